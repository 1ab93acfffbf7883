package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"nhsrelay/audit"
	"nhsrelay/directory"
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
// (made after the relay, which it queues into), its API listener, its
// admin routes and the bounce handler on the MX listener. With
// notices.listen empty every method is a no-op and the relay gets no
// signer: notice mail cannot be sent.
type noticeParts struct {
	cfg    noticesConfig
	logger *slog.Logger
	signer *dkim.Signer
	sts    *mtasts.Resolver

	mu    sync.Mutex
	svc   *notices.Service
	store *boltstore.Store
	srv   *http.Server
	wg    sync.WaitGroup
}

func newNoticeParts(cfg *config, logger *slog.Logger) (*noticeParts, error) {
	p := &noticeParts{cfg: cfg.Notices, logger: logger.With("component", "notices")}
	if p.cfg.Listen == "" {
		return p, nil
	}
	s, err := dkim.New(p.cfg.DKIM)
	if err != nil {
		return nil, fmt.Errorf("notices.dkim: %w", err)
	}
	p.signer = s
	if p.cfg.MTASTS {
		p.sts = mtasts.New(mtasts.Config{Logger: p.logger})
	}
	return p, nil
}

// relayConfig adds the notice parts to the relay's config.
func (p *noticeParts) relayConfig(c *relay.Config) {
	if p.signer != nil {
		c.NoticeSigner = p.signer
		c.NoticeObserver = p
		c.NoticeRatePerDomain = p.cfg.RatePerDomain
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

// open makes the service once the relay exists.
func (p *noticeParts) open(ctx context.Context, cfg *config, dir *directory.Directory, rel *relay.Relay, alog audit.Recorder, key []byte) error {
	if p.cfg.Listen == "" {
		return nil
	}
	st, err := boltstore.Open(cfg.NoticesDB(), key)
	if err != nil {
		return err
	}
	svc, err := notices.New(ctx, notices.Config{Store: st, Organisations: dir, Queue: rel, Hostname: cfg.Hostname,
		DefaultFrom: p.cfg.DefaultFrom, Orgs: p.cfg.Orgs, Logger: p.logger, Audit: alog,
		LetterCutoff: p.cfg.LetterCutoff, WebhookRetryFor: p.cfg.WebhookRetryFor})
	if err != nil {
		st.Close()
		return err
	}
	p.mu.Lock()
	p.svc, p.store = svc, st
	p.mu.Unlock()
	return nil
}

// handlers is the bounce handler for smtpd (VERP return paths on MX).
func (p *noticeParts) handlers() []smtpd.RecipientHandler {
	if p.svc == nil {
		return nil
	}
	return []smtpd.RecipientHandler{p.svc.BounceHandler()}
}

// adminHandler is the letters and credentials API, or nil.
func (p *noticeParts) adminHandler() http.Handler {
	if p.svc == nil {
		return nil
	}
	return p.svc.AdminHandler()
}

// serve runs the service and the HTTPS API until ctx ends; a listener
// that fails reports to fatal.
func (p *noticeParts) serve(ctx context.Context, tlsCfg *tls.Config, fatal chan<- error, bound *boundListeners) error {
	if p.svc == nil {
		return nil
	}
	ln, err := net.Listen("tcp", p.cfg.Listen)
	if err != nil {
		return fmt.Errorf("notices.listen: %w", err)
	}
	bound.set("notices", ln.Addr().String())
	p.srv = &http.Server{Handler: logRequests(p.logger, p.svc.APIHandler()), TLSConfig: tlsCfg,
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(p.logger.Handler(), slog.LevelWarn)}
	p.wg.Go(func() { p.svc.Run(ctx) })
	p.wg.Go(func() {
		if err := p.srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fatal <- fmt.Errorf("notices.listen: %w", err)
		}
	})
	p.logger.Info("listening", "mode", "notices", "addr", ln.Addr().String())
	return nil
}

// close stops the API, waits for the service and closes its store.
func (p *noticeParts) close(ctx context.Context) {
	if p.srv != nil {
		p.srv.Shutdown(ctx)
	}
	p.wg.Wait()
	if p.store != nil {
		p.store.Close()
	}
}
