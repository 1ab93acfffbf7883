package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"nhsrelay/admin"
	"nhsrelay/audit"
	"nhsrelay/audit/timeline"
	"nhsrelay/directory"
)

// timelineInterval is how often the index reads what the audit log gained
// (every query catches up too, so answers are never stale).
const timelineInterval = 2 * time.Second

// openTimeline opens the message timeline index over the audit log
// (data_dir/timeline.db) and keeps it current until the server closes.
func (s *server) openTimeline(context.Context) error {
	ix, stop, err := startTimeline(s.cfg, s.logger)
	if err != nil {
		return fmt.Errorf("timeline: %w", err)
	}
	s.timelines = ix
	s.closers = append(s.closers, stop)
	return nil
}

// startTimeline opens the index and runs its catch-up until stop, which
// also closes it.
func startTimeline(cfg *config, logger *slog.Logger) (ix *timeline.Indexer, stop func() error, err error) {
	st, err := timeline.OpenBolt(cfg.TimelineDB())
	if err != nil {
		// The index is derived from the audit log and must never stop
		// the relay: a file that cannot be opened is set aside and the
		// index rebuilt from the log.
		aside := cfg.TimelineDB() + ".broken-" + time.Now().UTC().Format("20060102T150405Z")
		logger.Error("timeline index unreadable; setting it aside and rebuilding it from the audit log",
			"file", cfg.TimelineDB(), "moved_to", aside, "err", err)
		if rerr := os.Rename(cfg.TimelineDB(), aside); rerr != nil {
			return nil, nil, fmt.Errorf("%w (and it could not be set aside: %v)", err, rerr)
		}
		if st, err = timeline.OpenBolt(cfg.TimelineDB()); err != nil {
			return nil, nil, err
		}
	}
	ix = timeline.NewIndexer(st, cfg.AuditLogPath(), logger.With("component", "timeline"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		ix.Run(ctx, timelineInterval)
	}()
	return ix, func() error {
		cancel()
		<-done
		return st.Close()
	}, nil
}

// operatorView lets the admin API's token holder see every message.
func operatorView(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(timeline.WithViewer(r.Context(), timeline.Viewer{Operator: true})))
	})
}

// accountAuthenticator is what the status API asks of the directory.
type accountAuthenticator interface {
	Authenticate(ctx context.Context, user, pass string) (directory.Account, error)
}

// accountView authenticates a sender with HTTP Basic and the SMTP
// account's own username and password (RFC 7617); the account then sees
// only the messages it sent. A failure is audited, as a failed SMTP AUTH
// is, and answered after the same bcrypt work whether the user exists or
// not (directory.Authenticate's concern).
func accountView(dir accountAuthenticator, rec audit.Recorder, h http.Handler) http.Handler {
	fails := &signInFailures{max: statusMaxFailures, window: statusFailureWindow, at: map[string][]time.Time{}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fails.blocked(clientIP(r), time.Now()) {
			admin.WriteJSONError(w, http.StatusTooManyRequests, "too many failed sign-ins from your address; try again later")
			return
		}
		user, pass, ok := r.BasicAuth()
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="nhsrelay message status", charset="UTF-8"`)
			admin.WriteJSONError(w, http.StatusUnauthorized, "sign in with your mail account's username and password (HTTP Basic)")
			return
		}
		acct, err := dir.Authenticate(r.Context(), user, pass)
		if err == nil && acct.Disabled {
			err = directory.ErrAuthFailed
		}
		switch {
		case errors.Is(err, directory.ErrAuthFailed):
			fails.add(clientIP(r), time.Now())
			rec.Record(audit.Event{Actor: "client " + clientIP(r), Action: "status.auth_failed", Outcome: "refused",
				Detail: "message status API sign-in failed"})
			w.Header().Set("WWW-Authenticate", `Basic realm="nhsrelay message status", charset="UTF-8"`)
			admin.WriteJSONError(w, http.StatusUnauthorized, "username or password not accepted; use your mail account's")
			return
		case err != nil:
			admin.WriteJSONError(w, http.StatusServiceUnavailable, "sign-in is unavailable for now; try again later")
			return
		}
		ctx := timeline.WithViewer(audit.WithActor(r.Context(), acct.Username), timeline.Viewer{Account: acct.Username})
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// Sign-in failures allowed per client address before the status API
// refuses it for a while, as smtpd limits failed SMTP AUTH.
const (
	statusMaxFailures   = 10
	statusFailureWindow = 10 * time.Minute
)

// signInFailures counts recent failed sign-ins per client address.
type signInFailures struct {
	max    int
	window time.Duration
	mu     sync.Mutex
	at     map[string][]time.Time
}

func (f *signInFailures) recent(ip string, now time.Time) []time.Time {
	ts := f.at[ip]
	for len(ts) > 0 && now.Sub(ts[0]) > f.window {
		ts = ts[1:]
	}
	if len(ts) == 0 {
		delete(f.at, ip)
	} else {
		f.at[ip] = ts
	}
	return ts
}

func (f *signInFailures) blocked(ip string, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.recent(ip, now)) >= f.max
}

func (f *signInFailures) add(ip string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.at[ip] = append(f.recent(ip, now), now)
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// openStatus binds the senders' status API (receipts.status_listen):
// HTTPS with the SMTP certificate, HTTP Basic with the SMTP account, only
// that account's messages. Nothing when the key is empty.
func (s *server) openStatus(context.Context) error {
	if s.cfg.StatusListen == "" {
		return nil
	}
	slog := s.component("status")
	mux := http.NewServeMux()
	h := accountView(s.dir, s.alog, s.timelines.Handler())
	mux.Handle("/v1/messages", h)
	mux.Handle("/v1/messages/", h)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		admin.WriteJSONError(w, http.StatusNotFound, "no such path: "+r.URL.Path+"; use /v1/messages/{queue ID, Message-ID or recipient}")
	})
	srv := admin.NewServer(mux, slog)
	tlsCfg := s.tls.ServerConfig()
	return s.listen(service{name: "status", key: "receipts.status_listen",
		serve: func(ln net.Listener) error {
			return ignoreClosed(srv.Serve(tls.NewListener(ln, tlsCfg)), http.ErrServerClosed)
		},
		stop: srv.Shutdown,
	}, s.cfg.StatusListen)
}
