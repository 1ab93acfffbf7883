package faxbridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"nhsrelay/audit"
)

// UploadHandler serves POST /v1/faxes for fax servers and scanners that
// can post: multipart/form-data with the fax in the part named "file"
// (TIFF or PDF) and the fields called (the number dialled, required),
// calling, caller_name, csi and quality. The request carries the
// server's token as "Authorization: Bearer <token>" (AddServer).
//
// Replies, each with a JSON body {"error": ..., "field": ...} that says
// what to change: 401 without a valid token, 413 over maxBytes, 415 when
// the file is neither TIFF nor PDF, 400 for a missing or unusable field,
// 503 when the fax cannot be stored now (try again; nothing was kept).
// 202 {"ref", "outcome"} when it was stored (delivered or dead letter).
func (b *Bridge) UploadHandler(maxBytes int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/faxes" {
			jsonError(w, http.StatusNotFound, "", "no such path; faxes are posted to /v1/faxes")
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			jsonError(w, http.StatusMethodNotAllowed, "", "use POST")
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		server, auth := b.authenticate(strings.TrimSpace(tok))
		if !ok || !auth {
			w.Header().Set("WWW-Authenticate", `Bearer realm="nhsrelay fax"`)
			b.record(r.Context(), audit.Event{Actor: "fax:http", Action: "fax.upload_refused", Outcome: "refused",
				Detail: "no valid fax server token"})
			jsonError(w, http.StatusUnauthorized, "Authorization", "a valid fax server token is required (nhsrelay fax server add NAME)")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBytes)
		if err := r.ParseMultipartForm(8 << 20); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				jsonError(w, http.StatusRequestEntityTooLarge, "file", fmt.Sprintf("the upload is larger than %d bytes", maxBytes))
				return
			}
			jsonError(w, http.StatusBadRequest, "", "send multipart/form-data with the fax in the part named file")
			return
		}
		defer r.MultipartForm.RemoveAll()
		f, _, err := r.FormFile("file")
		if err != nil {
			jsonError(w, http.StatusBadRequest, "file", "the part named file (the fax, TIFF or PDF) is missing")
			return
		}
		data, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			jsonError(w, http.StatusBadRequest, "file", "the file could not be read")
			return
		}
		isPDF := bytes.HasPrefix(data, []byte("%PDF-"))
		if !isPDF && !bytes.HasPrefix(data, []byte("II*\x00")) && !bytes.HasPrefix(data, []byte("MM\x00*")) {
			jsonError(w, http.StatusUnsupportedMediaType, "file", "the file is neither TIFF nor PDF")
			return
		}
		called := r.FormValue("called")
		if strings.TrimSpace(called) == "" {
			jsonError(w, http.StatusBadRequest, "called", "called (the number that was dialled) is required")
			return
		}
		in := Inbound{Source: "http", Called: called, Calling: r.FormValue("calling"), CallerName: r.FormValue("caller_name"),
			CSI: r.FormValue("csi"), Quality: r.FormValue("quality"), Received: b.cfg.Now(), Data: data, PDF: isPDF}
		if ts := r.FormValue("received"); ts != "" {
			t, err := time.Parse(time.RFC3339, ts)
			if err != nil {
				jsonError(w, http.StatusBadRequest, "received", "received must be an RFC 3339 time")
				return
			}
			in.Received = t
		}
		out, err := b.Receive(r.Context(), in)
		if err != nil {
			b.log.Error("fax upload could not be stored", "server", server, "err", err)
			w.Header().Set("Retry-After", "60")
			jsonError(w, http.StatusServiceUnavailable, "", "the fax could not be stored now; nothing was kept, send it again later")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		json.NewEncoder(w).Encode(map[string]any{"ref": out.Ref, "outcome": out.Outcome, "pages": out.Pages, "reason": out.Reason})
	})
}

func jsonError(w http.ResponseWriter, code int, field, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	body := map[string]string{"error": msg}
	if field != "" {
		body["field"] = field
	}
	json.NewEncoder(w).Encode(body)
}
