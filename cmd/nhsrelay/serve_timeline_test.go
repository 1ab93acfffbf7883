package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nhsrelay/admin"
	"nhsrelay/audit"
	"nhsrelay/audit/timeline"
	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

type oneAccount struct{}

func (oneAccount) Authenticate(_ context.Context, user, pass string) (directory.Account, error) {
	if user == "riverside" && pass == "right password 1234" {
		return directory.Account{Username: "riverside"}, nil
	}
	return directory.Account{}, directory.ErrAuthFailed
}

// TestAccountView: HTTP Basic with the SMTP account gives an account
// Viewer; a wrong password is refused and audited; after
// statusMaxFailures failures the address is refused for a while, even
// with the right password.
func TestAccountView(t *testing.T) {
	t.Parallel()
	log := &directorytest.AuditLog{}
	h := accountView(oneAccount{}, log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, _ := timeline.ViewerFrom(r.Context())
		io.WriteString(w, v.Account+" "+audit.ActorFrom(r.Context()))
	}))
	get := func(user, pass string) (int, string) {
		req := httptest.NewRequest("GET", "/v1/messages/X", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	if code, body := get("riverside", "right password 1234"); code != 200 || body != "riverside riverside" {
		t.Fatalf("right password = %d %q", code, body)
	}
	if code, _ := get("", ""); code != http.StatusUnauthorized {
		t.Errorf("no credentials = %d, want 401", code)
	}
	for range statusMaxFailures {
		if code, _ := get("riverside", "wrong"); code != http.StatusUnauthorized {
			t.Fatalf("wrong password = %d, want 401", code)
		}
	}
	if code, _ := get("riverside", "right password 1234"); code != http.StatusTooManyRequests {
		t.Errorf("after %d failures = %d, want 429", statusMaxFailures, code)
	}
	if n := len(log.Find("status.auth_failed")); n != statusMaxFailures {
		t.Errorf("%d status.auth_failed events, want %d", n, statusMaxFailures)
	}
}

// TestStartTimelineSetsABrokenIndexAside: an unreadable timeline.db never
// stops the server; it is moved aside and the index rebuilt from the log.
func TestStartTimelineSetsABrokenIndexAside(t *testing.T) {
	t.Parallel()
	cfg := &config{DataDir: t.TempDir()}
	alog, err := audit.Open(cfg.AuditLogPath(), nil)
	if err != nil {
		t.Fatal(err)
	}
	alog.Record(audit.Event{Action: "accepted", QueueID: "33QHYRHBKBQHGVEZRTNA2Z3JGC", Outcome: "ok",
		Detail: audit.WithFields("1 recipient(s)", audit.Fields{"rcpts": "a@nhs.example"})})
	alog.Close()
	if err := os.WriteFile(cfg.TimelineDB(), []byte("not a bbolt file, not even close"), 0o600); err != nil {
		t.Fatal(err)
	}
	ix, stop, err := startTimeline(cfg, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatalf("startTimeline over a broken index: %v", err)
	}
	defer stop()
	msgs, err := ix.Find(t.Context(), "a@nhs.example", time.Time{})
	if err != nil || len(msgs) != 1 {
		t.Errorf("Find after the rebuild = %d messages, %v; want 1", len(msgs), err)
	}
	aside, _ := filepath.Glob(cfg.TimelineDB() + ".broken-*")
	if len(aside) != 1 {
		t.Errorf("broken index not set aside: %v", aside)
	}
}

// TestMessagesBehindTheAdminToken: the admin API serves /v1/messages to
// the token holder only, as an operator who sees every message.
func TestMessagesBehindTheAdminToken(t *testing.T) {
	t.Parallel()
	tokFile := filepath.Join(t.TempDir(), "admin.token")
	const token = "0123456789abcdef0123456789abcdef"
	if err := os.WriteFile(tokFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := admin.LoadToken(tokFile)
	if err != nil {
		t.Fatal(err)
	}
	a := admin.New(admin.Config{Token: tok})
	a.Mount(operatorView(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, _ := timeline.ViewerFrom(r.Context())
		fmt.Fprintf(w, "operator=%t", v.Operator)
	})), "/v1/messages", "/v1/messages/")
	for _, tc := range []struct {
		auth string
		code int
		body string
	}{{"", 401, "admin token"}, {"Bearer " + token, 200, "operator=true"}} {
		req := httptest.NewRequest("GET", "/v1/messages/Q1", nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		rec := httptest.NewRecorder()
		a.Handler().ServeHTTP(rec, req)
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.body) {
			t.Errorf("GET /v1/messages/Q1 (%q) = %d %q, want %d %q", tc.auth, rec.Code, rec.Body.String(), tc.code, tc.body)
		}
	}
}
