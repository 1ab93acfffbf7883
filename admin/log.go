package admin

import (
	"log/slog"
	"net/http"
	"time"
)

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
