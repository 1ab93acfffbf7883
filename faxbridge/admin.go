package faxbridge

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"nhsrelay/audit"
)

// AdminHandler serves the administrators' fax API under /v1/faxes/ (the
// admin API mounts it behind its token):
//
//	GET    /v1/faxes/report[?format=csv]     who still faxes (Report)
//	GET    /v1/faxes/deadletters             faxes waiting to be re-routed
//	POST   /v1/faxes/deadletters/REF/reroute {"to": "endpoint address or ID"} or {} to route by number again
//	GET    /v1/faxes/servers                 fax server credentials
//	POST   /v1/faxes/servers                 {"name": "..."} → {"token": "..."} (shown once)
//	DELETE /v1/faxes/servers/NAME            revoke
func (b *Bridge) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/faxes/report", func(w http.ResponseWriter, r *http.Request) {
		rows, err := b.Report(r.Context())
		if err != nil {
			jsonError(w, http.StatusInternalServerError, "", err.Error())
			return
		}
		if r.URL.Query().Get("format") == "csv" {
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			WriteReportCSV(w, rows)
			return
		}
		writeJSON(w, http.StatusOK, rows)
	})
	mux.HandleFunc("GET /v1/faxes/deadletters", func(w http.ResponseWriter, r *http.Request) {
		dls, err := b.DeadLetters()
		if err != nil {
			jsonError(w, http.StatusInternalServerError, "", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, dls)
	})
	mux.HandleFunc("POST /v1/faxes/deadletters/{ref}/reroute", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			To string `json:"to"`
		}
		if r.ContentLength != 0 {
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil {
				jsonError(w, http.StatusBadRequest, "to", "send {\"to\": \"endpoint address\"} or an empty body")
				return
			}
		}
		out, err := b.Reroute(r.Context(), r.PathValue("ref"), body.To)
		switch {
		case errors.Is(err, ErrNoDeadLetter):
			jsonError(w, http.StatusNotFound, "ref", "no dead letter has this reference")
		case err != nil:
			jsonError(w, http.StatusServiceUnavailable, "", "the fax could not be sent on now: "+err.Error())
		default:
			writeJSON(w, http.StatusOK, out)
		}
	})
	mux.HandleFunc("GET /v1/faxes/servers", func(w http.ResponseWriter, r *http.Request) {
		s, err := b.Servers()
		if err != nil {
			jsonError(w, http.StatusInternalServerError, "", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, s)
	})
	mux.HandleFunc("POST /v1/faxes/servers", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Name string `json:"name"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil {
			jsonError(w, http.StatusBadRequest, "name", "send {\"name\": \"...\"}")
			return
		}
		tok, err := b.AddServer(body.Name, audit.ActorFrom(r.Context()))
		if err != nil {
			jsonError(w, http.StatusBadRequest, "name", strings.TrimPrefix(err.Error(), "faxbridge: "))
			return
		}
		writeJSON(w, http.StatusCreated, map[string]string{"name": body.Name, "token": tok})
	})
	mux.HandleFunc("DELETE /v1/faxes/servers/{name}", func(w http.ResponseWriter, r *http.Request) {
		err := b.RevokeServer(r.PathValue("name"), audit.ActorFrom(r.Context()))
		if errors.Is(err, ErrNoServer) {
			jsonError(w, http.StatusNotFound, "name", "no live fax server has this name")
			return
		}
		if err != nil {
			jsonError(w, http.StatusInternalServerError, "", err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
