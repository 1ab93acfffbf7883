package timeline

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Viewer is who asks the API: an operator sees every message; an account
// sees only the messages it sent.
type Viewer struct {
	Operator bool
	Account  string
}

type viewerKey struct{}

// WithViewer returns ctx carrying v, for Handler.
func WithViewer(ctx context.Context, v Viewer) context.Context {
	return context.WithValue(ctx, viewerKey{}, v)
}

// ViewerFrom returns the Viewer WithViewer put in ctx.
func ViewerFrom(ctx context.Context) (Viewer, bool) {
	v, ok := ctx.Value(viewerKey{}).(Viewer)
	return v, ok
}

// Handler serves
//
//	GET /v1/messages/{id}[?since=T]   id: queue ID, Message-ID or recipient
//	GET /v1/messages?rcpt=ADDR[&since=T]
//
// as JSON {"messages": [Message...]}. The caller's authentication must put
// a Viewer in the request context (WithViewer); without one every request
// is refused. since is RFC 3339 or a duration back from now ("24h").
func (ix *Indexer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/messages/{id}", func(w http.ResponseWriter, r *http.Request) {
		ix.serve(w, r, r.PathValue("id"))
	})
	mux.HandleFunc("GET /v1/messages", func(w http.ResponseWriter, r *http.Request) {
		rcpt := r.URL.Query().Get("rcpt")
		if !strings.Contains(rcpt, "@") {
			writeError(w, http.StatusBadRequest, "rcpt: give the recipient's address, e.g. ?rcpt=referrals.rx9@nhs.example")
			return
		}
		ix.serve(w, r, rcpt)
	})
	return mux
}

func (ix *Indexer) serve(w http.ResponseWriter, r *http.Request, query string) {
	v, ok := ViewerFrom(r.Context())
	if !ok || (!v.Operator && v.Account == "") {
		writeError(w, http.StatusUnauthorized, "authentication required")
		return
	}
	since, err := ParseSince(r.URL.Query().Get("since"), time.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, "since: "+err.Error())
		return
	}
	msgs, err := ix.Find(r.Context(), query, since)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "the timeline index could not be read; see the server log")
		return
	}
	if !v.Operator { // a sender sees only what its own account sent
		own := msgs[:0]
		for _, m := range msgs {
			if m.Account == v.Account {
				own = append(own, m)
			}
		}
		msgs = own
	}
	if len(msgs) == 0 {
		writeError(w, http.StatusNotFound, "no message found for "+query+" (a queue ID, a Message-ID or a recipient address)")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(struct {
		Messages []Message `json:"messages"`
	}{msgs})
}

// ParseSince reads a -since value: "" (all), RFC 3339, a date, or a
// duration back from now ("36h").
func ParseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, time.DateTime, time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, &sinceError{s}
}

type sinceError struct{ s string }

func (e *sinceError) Error() string {
	return "cannot read " + e.s + "; give a time (2026-12-08T14:00:00Z, 2026-12-08) or a duration back from now (24h)"
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
