package smimepolicy

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// AdminHandler serves the quarantine to operators as JSON:
//
//	GET /v1/quarantine       every Record, oldest first by ID
//	GET /v1/quarantine/{id}  one Record
//	POST /v1/quarantine/{id}/release {"reason": "..."}  deliver it (Release)
//	POST /v1/quarantine/{id}/delete  {"reason": "..."}  remove it (DeleteQuarantined)
//
// Release and delete answer the Record; a missing reason is 400 naming the
// field "reason", an unknown ID 404. Both are audited with the actor the
// caller put in the request context (audit.WithActor).
//
// A Record names the quarantine ID, the queue ID, the endpoint, the
// envelope sender, the client, when the message arrived and was
// quarantined, and the reason — never anything from the message. Errors
// are {"error": "..."}: 404 for an ID the quarantine does not hold, 500
// (details in the server log only) when it cannot be read.
//
// The message itself is not served: it is clinical, and the API is
// reachable by anyone holding the admin token. An operator who must
// inspect or re-inject one does so on the relay host with shell access:
// the file <QuarantineDir>/<id> is encrypted at rest with the spool key,
// and QuarantinedMessage(id) (or relay/spool opened with that key) yields
// the message as it arrived, still S/MIME encrypted if it came encrypted.
//
// Authentication is the caller's (cmd/nhsrelay wraps it with the admin
// token check, as it does relay.AdminHandler).
func (p *Policy) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/quarantine", func(w http.ResponseWriter, req *http.Request) {
		recs, err := p.Quarantined()
		if err != nil {
			p.adminError(w, req, err)
			return
		}
		writeAdminJSON(w, http.StatusOK, recs) // never null: Quarantined returns a non-nil slice
	})
	mux.HandleFunc("GET /v1/quarantine/{id}", func(w http.ResponseWriter, req *http.Request) {
		id := req.PathValue("id")
		// Look the ID up among the records listed rather than build a
		// path from it: an ID from the request never names a file.
		recs, err := p.Quarantined()
		if err != nil {
			p.adminError(w, req, err)
			return
		}
		for _, rec := range recs {
			if rec.ID == id {
				writeAdminJSON(w, http.StatusOK, rec)
				return
			}
		}
		writeAdminJSON(w, http.StatusNotFound, map[string]string{"error": "no quarantined message has this ID"})
	})
	mux.HandleFunc("POST /v1/quarantine/{id}/{action}", func(w http.ResponseWriter, req *http.Request) {
		var in struct {
			Reason string `json:"reason"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, 8<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			writeAdminJSON(w, http.StatusBadRequest, map[string]any{"error": "body must be JSON {\"reason\": \"...\"}: " + err.Error()})
			return
		}
		if strings.TrimSpace(in.Reason) == "" {
			writeAdminJSON(w, http.StatusBadRequest, map[string]any{"error": "reason is required",
				"fields": map[string]string{"reason": "required: why, for the audit log and the released message"}})
			return
		}
		var rec Record
		var err error
		switch req.PathValue("action") {
		case "release":
			rec, err = p.Release(req.Context(), req.PathValue("id"), in.Reason)
		case "delete":
			rec, err = p.DeleteQuarantined(req.Context(), req.PathValue("id"), in.Reason)
		default:
			writeAdminJSON(w, http.StatusNotFound, map[string]string{"error": "no such quarantine action; use release or delete"})
			return
		}
		switch {
		case errors.Is(err, ErrNotQuarantined):
			writeAdminJSON(w, http.StatusNotFound, map[string]string{"error": "no quarantined message has this ID"})
		case err != nil:
			p.adminError(w, req, err)
		default:
			writeAdminJSON(w, http.StatusOK, rec)
		}
	})
	// Anything else — another method, or a path under an ID such as a
	// would-be content download — is a JSON error too, not the mux's text.
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD, POST")
			writeAdminJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "the quarantine API reads records, and POSTs only .../{id}/release or .../{id}/delete"})
			return
		}
		writeAdminJSON(w, http.StatusNotFound, map[string]string{"error": "no such quarantine API path: " + req.URL.Path})
	})
	return mux
}

func writeAdminJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// adminError answers 500 with words that hold no internal detail (paths,
// errno); the detail goes to the log.
func (p *Policy) adminError(w http.ResponseWriter, req *http.Request, err error) {
	p.log.Error("admin API", "method", req.Method, "path", req.URL.Path, "err", err)
	writeAdminJSON(w, http.StatusInternalServerError, map[string]string{"error": "quarantine unreadable or unwritable; see the server log"})
}
