package notices

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
)

// NoticeView is a notice as the API shows it: never the NHS number.
type NoticeView struct {
	Reference    string      `json:"reference"`
	Organisation string      `json:"organisation"`
	Kind         Kind        `json:"kind"`
	Version      int         `json:"version"` // iCalendar SEQUENCE
	Status       Status      `json:"status"`
	EmailStatus  Status      `json:"email_status,omitempty"`
	LetterStatus LetterState `json:"letter_status,omitempty"`
	Created      time.Time   `json:"created"`
	Updated      time.Time   `json:"updated"`
	Timeline     []Event     `json:"timeline"`
}

func viewOf(n Notice) NoticeView {
	v := NoticeView{Reference: n.Reference, Organisation: n.Organisation, Kind: n.Kind, Version: n.Sequence,
		Status: n.Status, EmailStatus: n.EmailStatus, Created: n.Created, Updated: n.Updated}
	if n.Letter != nil {
		v.LetterStatus = n.Letter.State
	}
	for _, e := range n.Timeline {
		if strings.HasPrefix(e.Detail, "digest ") {
			e.Detail = ""
		}
		v.Timeline = append(v.Timeline, e)
	}
	return v
}

// APIHandler serves the sending systems' API, each request with its
// notice credential as a bearer token:
//
//	POST /v1/notices              take a notice (201 new, 200 repeat or new version)
//	GET  /v1/notices/{reference}  its status and timeline
func (s *Service) APIHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/notices", s.withCredential(s.postNotice))
	mux.HandleFunc("GET /v1/notices/{reference...}", s.withCredential(s.getNotice))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such path: "+r.Method+" "+r.URL.Path, nil)
	})
	return mux
}

type credentialHandler func(w http.ResponseWriter, r *http.Request, c Credential)

func (s *Service) withCredential(h credentialHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		c, err := s.Authenticate(strings.TrimSpace(tok))
		if !ok || err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="nhsrelay notices"`) // RFC 6750 §3
			writeError(w, http.StatusUnauthorized, "missing, unknown or revoked notice credential (Authorization: Bearer nhsn_...)", nil)
			return
		}
		h(w, r, c)
	}
}

func (s *Service) postNotice(w http.ResponseWriter, r *http.Request, c Credential) {
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	req, err := DecodeRequest(body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		writeError(w, http.StatusRequestEntityTooLarge, "a notice may be at most 64 KiB of JSON", nil)
		return
	}
	if err != nil {
		s.writeAcceptError(w, err)
		return
	}
	n, created, err := s.Accept(r.Context(), c, req)
	if err != nil {
		s.writeAcceptError(w, err)
		return
	}
	code := http.StatusOK
	if created && n.Sequence == 0 {
		code = http.StatusCreated
	}
	if !created {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, code, viewOf(n))
}

func (s *Service) writeAcceptError(w http.ResponseWriter, err error) {
	var ve *ValidationError
	var ce *ConflictError
	switch {
	case errors.As(err, &ve):
		writeError(w, http.StatusBadRequest, "the notice has invalid fields; nothing was stored", ve.Fields)
	case errors.Is(err, ErrForbidden):
		writeError(w, http.StatusForbidden, "this credential may not send notices for that organisation", nil)
	case errors.As(err, &ce):
		writeError(w, http.StatusConflict, ce.Reason, nil)
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "no notice with this reference to cancel", nil)
	default:
		s.log.Error("accept notice", "err", err)
		writeError(w, http.StatusInternalServerError, "the notice could not be stored; try again (nothing was stored)", nil)
	}
}

func (s *Service) getNotice(w http.ResponseWriter, r *http.Request, c Credential) {
	n, err := s.Get(r.Context(), c, r.PathValue("reference"))
	if errors.Is(err, ErrNotFound) {
		writeError(w, http.StatusNotFound, "no notice with this reference", nil)
		return
	}
	if err != nil {
		s.log.Error("get notice", "err", err)
		writeError(w, http.StatusInternalServerError, "could not read the notice", nil)
		return
	}
	writeJSON(w, http.StatusOK, viewOf(n))
}

type errorBody struct {
	Error  string       `json:"error"`
	Fields []FieldError `json:"fields,omitempty"`
}

func writeError(w http.ResponseWriter, code int, msg string, fields []FieldError) {
	writeJSON(w, code, errorBody{Error: msg, Fields: fields})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
