package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"nhsrelay/audit"
)

// adminActor is the actor audit events carry for changes made through the
// admin API: there is one token, so one name.
const adminActor = "admin"

// adminToken holds the bearer token's SHA-256; SIGHUP re-reads the file so
// a token can be rotated without a restart.
type adminToken struct {
	path string
	sum  atomic.Pointer[[sha256.Size]byte]
}

func loadAdminToken(path string) (*adminToken, error) {
	t := &adminToken{path: path}
	return t, t.reload()
}

func (t *adminToken) reload() error {
	b, err := os.ReadFile(t.path)
	if err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 {
		return fmt.Errorf("admin token %s: shorter than 16 characters", t.path)
	}
	sum := sha256.Sum256([]byte(tok))
	t.sum.Store(&sum)
	return nil
}

// check compares the presented token in constant time. Both sides are
// hashed first so that neither the length nor a prefix of the real token
// shows in the timing.
func (t *adminToken) check(presented string) bool {
	got := sha256.Sum256([]byte(presented))
	want := t.sum.Load()
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// adminHandlers are the parts the admin API mounts; nil ones are left out.
type adminHandlers struct {
	Queue      http.Handler // relay.AdminHandler: /v1/queue...
	Quarantine http.Handler // smimepolicy.Policy.AdminHandler: /v1/quarantine...
	Directory  http.Handler // directory/api: /v1/directory/... and /fhir/...
	Fax        http.Handler // faxbridge.Bridge.AdminHandler: /v1/faxes/...
	Metrics    prometheus.Gatherer
	Token      *adminToken
	Logger     *slog.Logger
}

// newAdminHandler builds the admin API. /healthz answers without a token
// (for a supervisor's liveness probe; it says nothing but "ok"); every other
// path needs "Authorization: Bearer <token>", and the request context
// carries the "admin" actor for the audit log.
func newAdminHandler(h adminHandlers) http.Handler {
	api := http.NewServeMux()
	if h.Queue != nil {
		api.Handle("/v1/queue", h.Queue)
		api.Handle("/v1/queue/", h.Queue)
	}
	if h.Fax != nil {
		api.Handle("/v1/faxes/", h.Fax)
	}
	if h.Quarantine != nil {
		api.Handle("/v1/quarantine", h.Quarantine)
		api.Handle("/v1/quarantine/", h.Quarantine)
	}
	if h.Directory != nil {
		api.Handle("/v1/directory/", h.Directory)
		api.Handle("/fhir/", h.Directory)
	}
	if h.Metrics != nil {
		api.Handle("GET /metrics", promhttp.HandlerFor(h.Metrics, promhttp.HandlerOpts{
			ErrorLog: slog.NewLogLogger(h.Logger.Handler(), slog.LevelError)}))
	}
	api.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusNotFound, "no such admin API path: "+r.URL.Path)
	})

	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	root.Handle("/", requireToken(h.Token, api))
	return logRequests(h.Logger, root)
}

func requireToken(tok *adminToken, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		presented, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !tok.check(strings.TrimSpace(presented)) {
			// RFC 6750 §3: say which scheme is expected.
			w.Header().Set("WWW-Authenticate", `Bearer realm="nhsrelay admin"`)
			writeJSONError(w, http.StatusUnauthorized, "missing or wrong admin token (see admin.token_file)")
			return
		}
		next.ServeHTTP(w, r.WithContext(audit.WithActor(r.Context(), adminActor)))
	})
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// statusWriter remembers the status code for the access log.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// logRequests logs one line per admin request: method, path, status,
// duration. Never headers (the token) or bodies.
func logRequests(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		level := slog.LevelInfo
		if r.URL.Path == "/healthz" || r.URL.Path == "/metrics" {
			level = slog.LevelDebug // scraped every few seconds
		}
		logger.Log(r.Context(), level, "admin request", "method", r.Method, "path", r.URL.Path,
			"status", sw.code, "duration", time.Since(start).Round(time.Microsecond), "remote", r.RemoteAddr)
	})
}

// newAdminServer wraps the handler with timeouts fit for a loopback API.
func newAdminServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute, // directory imports can be large
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}
