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

	"github.com/prometheus/client_golang/prometheus"

	"nhsrelay/audit"
	"nhsrelay/directory"
	"nhsrelay/faxbridge"
	"nhsrelay/relay"
	"nhsrelay/smtpd"
)

// faxRuntime is the fax bridge as serve runs it: nil-safe, so a server
// without [fax] enabled calls the same methods and gets nothing.
type faxRuntime struct {
	cfg      faxConfig
	bridge   *faxbridge.Bridge
	uploadLn net.Listener
	upload   *http.Server
	logger   *slog.Logger
}

// startFaxBridge opens the bridge and binds its upload listener (the
// intakes start with run).
func startFaxBridge(cfg *config, dir *directory.Directory, q faxbridge.Queue, key []byte, alog audit.Recorder,
	reg prometheus.Registerer, logger *slog.Logger, tlsCfg *tls.Config) (*faxRuntime, error) {
	if !cfg.Fax.Enabled {
		return nil, nil
	}
	bc := cfg.Fax.bridge()
	bc.Directory, bc.Queue, bc.Dir, bc.SpoolKey = dir, q, cfg.FaxDir(), key
	bc.Logger, bc.Audit, bc.Metrics = logger.With("component", "fax"), alog, reg
	b, err := faxbridge.New(bc)
	if err != nil {
		return nil, fmt.Errorf("fax: %w", err)
	}
	f := &faxRuntime{cfg: cfg.Fax, bridge: b, logger: bc.Logger}
	if cfg.Fax.UploadListen != "" {
		ln, err := net.Listen("tcp", cfg.Fax.UploadListen)
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("fax.upload_listen: %w", err)
		}
		// Fax servers send a credential: TLS always (DESIGN: secrets
		// never in clear on the wire).
		f.uploadLn = tls.NewListener(ln, tlsCfg)
		f.upload = &http.Server{Handler: b.UploadHandler(cfg.Fax.UploadMaxBytes), ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout: 5 * time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
			ErrorLog: slog.NewLogLogger(bc.Logger.Handler(), slog.LevelWarn)}
	}
	return f, nil
}

// handlers are the fax bridge's smtpd recipient handlers: T.37 mail.
func (f *faxRuntime) handlers() []smtpd.RecipientHandler {
	if f == nil || f.cfg.T37Domain == "" {
		return nil
	}
	return []smtpd.RecipientHandler{t37Handler{&faxbridge.T37{Bridge: f.bridge, Domain: f.cfg.T37Domain}}}
}

// admin is the /v1/faxes/ admin API, nil without a bridge.
func (f *faxRuntime) admin() http.Handler {
	if f == nil {
		return nil
	}
	return f.bridge.AdminHandler()
}

// bound records the upload listener's address.
func (f *faxRuntime) bound(b *boundListeners) {
	if f != nil && f.uploadLn != nil {
		b.set("fax_upload", f.uploadLn.Addr().String())
	}
}

// run starts the spool folder and upload intakes until ctx ends; a
// listener that stops by itself reports to fatal.
func (f *faxRuntime) run(ctx context.Context, fatal chan<- error) {
	if f == nil {
		return
	}
	if f.cfg.SpoolDir != "" {
		sf := &faxbridge.SpoolFolder{Bridge: f.bridge, Dir: f.cfg.SpoolDir, Rescan: f.cfg.SpoolRescan}
		go func() {
			if err := sf.Run(ctx); err != nil {
				f.report(fatal, fmt.Errorf("fax.spool_dir: %w", err))
			}
		}()
		f.logger.Info("watching fax spool folder", "dir", f.cfg.SpoolDir)
	}
	if f.upload != nil {
		go func() {
			if err := f.upload.Serve(f.uploadLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				f.report(fatal, fmt.Errorf("fax.upload_listen: %w", err))
			}
		}()
		go func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			f.upload.Shutdown(sctx)
		}()
		f.logger.Info("listening", "mode", "fax_upload", "addr", f.uploadLn.Addr().String())
	}
}

// report hands err to serve's fatal channel, or logs it if that is full.
func (f *faxRuntime) report(fatal chan<- error, err error) {
	select {
	case fatal <- err:
	default:
		f.logger.Error("fax intake stopped", "err", err)
	}
}

func (f *faxRuntime) close() error {
	if f == nil {
		return nil
	}
	if f.uploadLn != nil {
		f.uploadLn.Close()
	}
	return f.bridge.Close()
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
