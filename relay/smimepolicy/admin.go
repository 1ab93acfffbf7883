package smimepolicy

import (
	"encoding/json"
	"net/http"
)

// AdminHandler serves the quarantine to operators as JSON:
//
//	GET /v1/quarantine       every Record, oldest first by ID
//	GET /v1/quarantine/{id}  one Record
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
	// Anything else — another method, or a path under an ID such as a
	// would-be content download — is a JSON error too, not the mux's text.
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeAdminJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "the quarantine API is read-only"})
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
	writeAdminJSON(w, http.StatusInternalServerError, map[string]string{"error": "quarantine unreadable; see the server log"})
}
