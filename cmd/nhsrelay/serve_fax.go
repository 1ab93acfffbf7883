package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"nhsrelay/faxbridge"
	"nhsrelay/relay"
	"nhsrelay/smtpd"
)

// faxRuntime is the fax bridge as serve runs it: nil-safe, so a server
// without [fax] enabled calls the same methods and gets nothing.
type faxRuntime struct {
	cfg    faxConfig
	bridge *faxbridge.Bridge
}

// openFax opens the fax bridge (after the relay, before smtpd, which
// takes its T.37 handler): its spool folder becomes a job and its upload
// endpoint a service, served with the server's TLS certificate.
func (s *server) openFax(context.Context) error {
	if !s.cfg.Fax.Enabled {
		return nil
	}
	bc := s.cfg.Fax.bridge()
	bc.Directory, bc.Queue, bc.Dir, bc.SpoolKey = s.dir, s.rel, s.cfg.FaxDir(), s.spoolKey
	bc.Logger, bc.Audit, bc.Metrics = s.component("fax"), s.alog, s.reg
	b, err := faxbridge.New(bc)
	if err != nil {
		return fmt.Errorf("fax: %w", err)
	}
	s.closers = append(s.closers, b.Close)
	s.fax = &faxRuntime{cfg: s.cfg.Fax, bridge: b}
	if dir := s.cfg.Fax.SpoolDir; dir != "" {
		sf := &faxbridge.SpoolFolder{Bridge: b, Dir: dir, Rescan: s.cfg.Fax.SpoolRescan}
		s.jobs = append(s.jobs, func(ctx context.Context) {
			if err := sf.Run(ctx); err != nil {
				bc.Logger.Error("fax spool folder stopped; faxes dropped there wait until a restart", "dir", dir, "err", err)
			}
		})
	}
	if s.cfg.Fax.UploadListen == "" {
		return nil
	}
	srv := &http.Server{Handler: b.UploadHandler(s.cfg.Fax.UploadMaxBytes), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 5 * time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(bc.Logger.Handler(), slog.LevelWarn)}
	// Fax servers send a credential: always TLS. s.tls is the reloader
	// openSMTP sets; the service serves only after every part is open.
	return s.listen(service{name: "fax_upload", key: "fax.upload_listen",
		serve: func(ln net.Listener) error {
			return ignoreClosed(srv.Serve(tls.NewListener(ln, s.tls.ServerConfig())), http.ErrServerClosed)
		},
		stop: srv.Shutdown,
	}, s.cfg.Fax.UploadListen)
}

// handlers are the fax bridge's smtpd recipient handlers: T.37 mail.
func (f *faxRuntime) handlers() []smtpd.RecipientHandler {
	if f == nil || f.cfg.T37Domain == "" {
		return nil
	}
	return []smtpd.RecipientHandler{t37Handler{&faxbridge.T37{Bridge: f.bridge, Domain: f.cfg.T37Domain, Gateways: f.cfg.T37Gateways}}}
}

// admin is the /v1/faxes/ admin API, nil without a bridge.
func (f *faxRuntime) admin() http.Handler {
	if f == nil {
		return nil
	}
	return f.bridge.AdminHandler()
}

// t37Handler is faxbridge.T37 as smtpd's RecipientHandler: the fax
// bridge cannot import smtpd (intakes never import each other), so its
// refusals become smtpd.HandlerErrors here.
type t37Handler struct{ h *faxbridge.T37 }

func (a t37Handler) Accepts(addr string) bool { return a.h.Accepts(addr) }

func (a t37Handler) Handle(ctx context.Context, env relay.Envelope, body io.Reader) (string, error) {
	text, err := a.h.Handle(ctx, env, body)
	var r *faxbridge.Refusal
	if errors.As(err, &r) {
		return "", &smtpd.HandlerError{Code: r.Code, Subject: r.Subject, Detail: r.Detail, Text: r.Text, Err: err}
	}
	return text, err
}
