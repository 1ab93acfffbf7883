package admin

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"nhsrelay/audit"
)

// Actor is the actor audit events carry for changes made through the
// admin API: there is one token, so one name.
const Actor = "admin"

// Config is what New needs.
type Config struct {
	Token   *Token              // required: every path but /healthz needs it
	Metrics prometheus.Gatherer // nil: no /metrics
	Logger  *slog.Logger        // nil: discard
}

// API is the admin HTTP API. Mount handlers on it, then serve Handler.
type API struct {
	mux    *http.ServeMux // behind the token
	token  *Token
	logger *slog.Logger
}

// New builds the API with /healthz, /metrics (if cfg.Metrics is set) and a
// JSON 404 for every path nobody mounted.
func New(cfg Config) *API {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &API{mux: http.NewServeMux(), token: cfg.Token, logger: cfg.Logger}
	if cfg.Metrics != nil {
		a.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Metrics, promhttp.HandlerOpts{
			ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelError)}))
	}
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		WriteJSONError(w, http.StatusNotFound, "no such admin API path: "+r.URL.Path)
	})
	return a
}

// Mount serves h, behind the token, at each http.ServeMux pattern
// ("/v1/queue", "/v1/queue/"). A nil h mounts nothing, so optional parts
// can be passed as they are.
func (a *API) Mount(h http.Handler, patterns ...string) {
	if h == nil {
		return
	}
	for _, p := range patterns {
		a.mux.Handle(p, h)
	}
}

// Handler is the whole API. /healthz answers without a token (it says
// nothing but "ok"); every other path needs "Authorization: Bearer
// <token>", and the request context carries the "admin" actor for the
// audit log.
func (a *API) Handler() http.Handler {
	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	root.Handle("/", requireToken(a.token, a.mux))
	return logRequests(a.logger, root)
}

func requireToken(tok *Token, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		presented, ok := bearer(r.Header.Get("Authorization"))
		if !ok || !tok.Check(presented) {
			// RFC 6750 §3: say which scheme is expected.
			w.Header().Set("WWW-Authenticate", `Bearer realm="nhsrelay admin"`)
			WriteJSONError(w, http.StatusUnauthorized, "missing or wrong admin token (see admin.token_file)")
			return
		}
		next.ServeHTTP(w, r.WithContext(audit.WithActor(r.Context(), Actor)))
	})
}

// WriteJSONError answers {"error": msg} with code.
func WriteJSONError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// NewServer wraps h with timeouts fit for a loopback API.
func NewServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute, // directory imports can be large
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}
