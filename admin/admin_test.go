package admin

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"nhsrelay/audit"
)

func TestAdminAPI(t *testing.T) {
	t.Parallel()
	tokFile := filepath.Join(t.TempDir(), "admin.token")
	const token = "0123456789abcdef0123456789abcdef"
	if err := os.WriteFile(tokFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := LoadToken(tokFile)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "nhsrelay_test_total", Help: "test"}))
	queueH := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "queue "+r.URL.Path+" actor="+audit.ActorFrom(r.Context()))
	})
	api := New(Config{Metrics: reg, Token: tok, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	api.Mount(queueH, "/v1/queue", "/v1/queue/")
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)

	get := func(path, auth string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		path, auth string
		code       int
		body       string
	}{
		{"/healthz", "", 200, "ok"},
		{"/v1/queue", "", 401, "admin token"},
		{"/v1/queue", "Bearer wrong", 401, "admin token"},
		{"/v1/queue", "Bearer " + token[:31], 401, "admin token"},
		{"/v1/queue", "Basic " + token, 401, "admin token"},
		{"/v1/queue", "Bearer " + token, 200, "queue /v1/queue actor=admin"},
		// RFC 9110 §11.1: the scheme name is case-insensitive.
		{"/v1/queue", "bearer " + token, 200, "queue /v1/queue actor=admin"},
		{"/v1/queue", "BEARER  " + token, 200, "queue /v1/queue actor=admin"},
		{"/v1/queue", "bearer wrong", 401, "admin token"},
		{"/v1/queue", "Bearer" + token, 401, "admin token"},
		{"/v1/queue/ABC/retry", "Bearer " + token, 200, "queue /v1/queue/ABC/retry actor=admin"},
		{"/metrics", "", 401, "admin token"},
		{"/metrics", "Bearer " + token, 200, "nhsrelay_test_total 0"},
		{"/v1/nothing", "Bearer " + token, 404, "no such admin API path"},
	}
	for _, tc := range tests {
		code, body := get(tc.path, tc.auth)
		if code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("GET %s (%q) = %d %q, want %d containing %q", tc.path, tc.auth, code, body, tc.code, tc.body)
		}
	}

	// A rotated token takes effect on reload; the old one stops working.
	const rotated = "fedcba9876543210fedcba9876543210"
	if err := os.WriteFile(tokFile, []byte(rotated), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := tok.Reload(); err != nil {
		t.Fatal(err)
	}
	if code, _ := get("/v1/queue", "Bearer "+token); code != 401 {
		t.Errorf("old token after rotation: %d, want 401", code)
	}
	if code, _ := get("/v1/queue", "Bearer "+rotated); code != 200 {
		t.Errorf("new token after rotation: %d, want 200", code)
	}
}
