package notices

import (
	"encoding/json"
	"errors"
	"net/http"
)

// AdminHandler serves the operators' side, for cmd to mount behind the
// admin token:
//
//	GET    /v1/letters?status=pending            the print queue
//	DELETE /v1/letters/{reference}               cancel a letter before its run
//	POST   /v1/letters/print-runs                one run: every letter queued before the cut-off
//	GET    /v1/letters/print-runs                the runs
//	GET    /v1/letters/print-runs/{id}/pdf       its combined PDF
//	POST   /v1/letters/print-runs/{id}/printed   mark its letters printed
//	GET    /v1/notice-credentials                credentials (no secrets)
//	POST   /v1/notice-credentials                {"name", "organisations", "webhook"} → token, once
//	POST   /v1/notice-credentials/{id}/revoke
func (s *Service) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/letters", func(w http.ResponseWriter, r *http.Request) {
		ls, err := s.Letters(r.Context(), LetterState(r.URL.Query().Get("status")))
		s.reply(w, ls, err)
	})
	mux.HandleFunc("DELETE /v1/letters/{reference...}", func(w http.ResponseWriter, r *http.Request) {
		err := s.CancelLetter(r.Context(), r.PathValue("reference"))
		if errors.Is(err, ErrLetterNotPending) {
			writeError(w, http.StatusConflict, "the letter is not waiting to be printed (none, cancelled, or in a print run already)", nil)
			return
		}
		s.reply(w, map[string]string{"result": "cancelled"}, err)
	})
	mux.HandleFunc("POST /v1/letters/print-runs", func(w http.ResponseWriter, r *http.Request) {
		run, err := s.CreatePrintRun(r.Context())
		run.PDF = nil
		s.reply(w, run, err)
	})
	mux.HandleFunc("GET /v1/letters/print-runs", func(w http.ResponseWriter, r *http.Request) {
		rs, err := s.Runs(r.Context())
		s.reply(w, rs, err)
	})
	mux.HandleFunc("GET /v1/letters/print-runs/{id}/pdf", func(w http.ResponseWriter, r *http.Request) {
		run, err := s.store.Run(r.Context(), r.PathValue("id"))
		if err != nil {
			s.reply(w, nil, err)
			return
		}
		w.Header().Set("Content-Type", "application/pdf")
		w.Header().Set("Content-Disposition", `attachment; filename="`+run.ID+`.pdf"`)
		w.Write(run.PDF)
	})
	mux.HandleFunc("POST /v1/letters/print-runs/{id}/printed", func(w http.ResponseWriter, r *http.Request) {
		run, err := s.MarkPrinted(r.Context(), r.PathValue("id"))
		run.PDF = nil
		s.reply(w, run, err)
	})
	mux.HandleFunc("GET /v1/notice-credentials", func(w http.ResponseWriter, r *http.Request) {
		cs, err := s.Credentials(r.Context())
		s.reply(w, cs, err)
	})
	mux.HandleFunc("POST /v1/notice-credentials", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Name          string   `json:"name"`
			Organisations []string `json:"organisations"`
			Webhook       string   `json:"webhook"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10)).Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, "want JSON {\"name\", \"organisations\", \"webhook\"}", nil)
			return
		}
		c, tok, err := s.AddCredential(r.Context(), req.Name, req.Organisations, req.Webhook)
		var ve *ValidationError
		if errors.As(err, &ve) {
			writeError(w, http.StatusBadRequest, "invalid credential", ve.Fields)
			return
		}
		secret := c.WebhookSecret
		c.SecretHash, c.WebhookSecret = "", ""
		s.reply(w, map[string]any{"credential": c, "token": tok, "webhook_secret": secret}, err)
	})
	mux.HandleFunc("POST /v1/notice-credentials/{id}/revoke", func(w http.ResponseWriter, r *http.Request) {
		err := s.RevokeCredential(r.Context(), r.PathValue("id"))
		s.reply(w, map[string]string{"result": "revoked"}, err)
	})
	return mux
}

func (s *Service) reply(w http.ResponseWriter, v any, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error(), nil)
	case err != nil:
		s.log.Error("notices admin", "err", err)
		writeError(w, http.StatusInternalServerError, "failed; the server log has the details", nil)
	default:
		writeJSON(w, http.StatusOK, v)
	}
}
