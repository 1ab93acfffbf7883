package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"nhsrelay/admin"
	"nhsrelay/notices"
	"nhsrelay/notices/boltstore"
	"nhsrelay/notices/dkim"
	"nhsrelay/relay"
	"nhsrelay/relay/mtasts"
	"nhsrelay/smtpd"
)

// NoticesDB is the notices store, sealed with the spool key.
func (c *config) NoticesDB() string { return filepath.Join(c.DataDir, "notices.db") }

// noticeParts wires appointment notices (issue 11) into serve: the DKIM
// signer and MTA-STS lookup the relay uses for notice mail, the service
// (made after the relay, which it queues into), its HTTPS API, its admin
// routes and the bounce handler on the MX listener. With notices.http_listen
// empty every method is a no-op and the relay gets no signer: notice mail
// cannot be sent.
type noticeParts struct {
	cfg    noticesConfig
	logger *slog.Logger
	signer *dkim.Signer
	sts    *mtasts.Resolver

	mu  sync.Mutex
	svc *notices.Service
}

// openNoticeParts makes what the relay needs for notice mail; it runs
// before openRelay.
func (s *server) openNoticeParts(context.Context) error {
	p := &noticeParts{cfg: s.cfg.Notices, logger: s.component("notices")}
	s.notice = p
	if p.cfg.Listen == "" {
		return nil
	}
	signer, err := dkim.New(p.cfg.DKIM)
	if err != nil {
		return fmt.Errorf("notices.dkim: %w", err)
	}
	p.signer = signer
	if p.cfg.MTASTS {
		p.sts = mtasts.New(mtasts.Config{Logger: p.logger})
	}
	return nil
}

// relayConfig adds the notice parts to the relay's config.
func (p *noticeParts) relayConfig(c *relay.Config) {
	if p.signer != nil {
		c.NoticeSigner, c.NoticeObserver, c.NoticeRatePerDomain = p.signer, p, p.cfg.RatePerDomain
	}
	if p.sts != nil {
		c.MTASTS = p.sts
	}
}

// NoticeOutcome forwards the relay's outcomes to the service.
func (p *noticeParts) NoticeOutcome(ctx context.Context, o relay.NoticeOutcome) bool {
	p.mu.Lock()
	svc := p.svc
	p.mu.Unlock()
	return svc != nil && svc.NoticeOutcome(ctx, o)
}

// openNotices opens the notices store and service once the relay exists,
// binds its HTTPS API (the server's TLS certificate, read when a client
// connects) and adds its dispatcher as a job; it runs before openSMTP,
// which takes its bounce handler.
func (s *server) openNotices(ctx context.Context) error {
	p := s.notice
	if p.cfg.Listen == "" {
		return nil
	}
	st, err := boltstore.Open(s.cfg.NoticesDB(), s.spoolKey)
	if err != nil {
		return fmt.Errorf("notices: %w", err)
	}
	svc, err := notices.New(ctx, notices.Config{Store: st, Organisations: s.dir, Queue: s.rel, Hostname: s.cfg.Hostname,
		DefaultFrom: p.cfg.DefaultFrom, Orgs: p.cfg.Orgs, Logger: p.logger, Audit: s.alog,
		LetterCutoff: p.cfg.LetterCutoff, WebhookRetryFor: p.cfg.WebhookRetryFor})
	if err != nil {
		st.Close()
		return fmt.Errorf("notices: %w", err)
	}
	p.mu.Lock()
	p.svc = svc
	p.mu.Unlock()
	done := make(chan struct{})
	s.jobs = append(s.jobs, func(ctx context.Context) { defer close(done); svc.Run(ctx) })
	s.closers = append(s.closers, func() error {
		select { // the dispatcher stops with the jobs; its store closes after it
		case <-done:
		case <-time.After(shutdownGrace):
		}
		return st.Close()
	})
	srv := &http.Server{Handler: svc.APIHandler(),
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.tls.ServerConfig(), nil
		}},
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(p.logger.Handler(), slog.LevelWarn)}
	return s.listen(service{name: "notices", key: "notices.http_listen",
		serve: func(ln net.Listener) error { return ignoreClosed(srv.ServeTLS(ln, "", ""), http.ErrServerClosed) },
		stop:  srv.Shutdown,
	}, p.cfg.Listen)
}

// handlers is the bounce handler for smtpd (VERP return paths on MX).
func (p *noticeParts) handlers() []smtpd.RecipientHandler {
	if p.svc == nil {
		return nil
	}
	return []smtpd.RecipientHandler{p.svc.BounceHandler()}
}

// mount puts the letters and credentials API on the admin API.
func (p *noticeParts) mount(a *admin.API) {
	if p.svc != nil {
		a.Mount(p.svc.AdminHandler(), "/v1/letters", "/v1/letters/", "/v1/notice-credentials", "/v1/notice-credentials/")
	}
}
