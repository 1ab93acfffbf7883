package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"nhsrelay/audit"
	"nhsrelay/certs"
	"nhsrelay/directory"
	"nhsrelay/directory/api"
	"nhsrelay/directory/boltstore"
	"nhsrelay/relay"
	"nhsrelay/relay/queue"
	"nhsrelay/relay/smimepolicy"
	"nhsrelay/relay/spool"
	"nhsrelay/smtpd"
)

// shutdownGrace bounds how long SMTP sessions in a transaction may take to
// finish after SIGTERM; deliveries in flight are waited for separately
// (each is bounded by the relay's attempt timeout).
const shutdownGrace = 30 * time.Second

// runServe runs every listener until SIGTERM or SIGINT.
func runServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	level := new(slog.LevelVar)
	level.Set(cfg.LogLevel)
	logger := newLogger(os.Stderr, cfg.LogFormat, level)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		// After the first signal, restore the default action: a second
		// SIGTERM or SIGINT ends the process at once. That loses nothing
		// acknowledged (each 250 was sent after fsync); it only cuts
		// sessions and deliveries short, and they are retried.
		<-ctx.Done()
		stop()
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	if err := serve(ctx, cfg, logger, level, hup); err != nil {
		logger.Error("nhsrelay stopped", "err", err)
		return err
	}
	return nil
}

func newLogger(w io.Writer, format string, level slog.Leveler) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// relayMailer sends the directory's verification challenges through the
// relay. The directory is opened before the relay (the relay asks it for
// next hops), so the relay is set once it exists.
type relayMailer struct {
	relay *relay.Relay
}

func (m *relayMailer) Send(ctx context.Context, from string, to []string, msg io.Reader) error {
	if m.relay == nil {
		return errors.New("mailer: relay not started")
	}
	// System: challenges and summaries are the relay's own, non-clinical
	// mail; a challenge goes to an endpoint that is not verified yet and
	// may have no S/MIME certificate.
	_, err := m.relay.Submit(ctx, relay.Envelope{From: from, Recipients: to, System: true}, msg)
	return err
}

// serve opens the stores, starts the relay, the SMTP listeners and the
// admin API, and runs until ctx ends; then it shuts down in order: stop
// accepting mail, finish sessions, finish deliveries in flight, close the
// stores.
func serve(ctx context.Context, cfg *config, logger *slog.Logger, level *slog.LevelVar, hup <-chan os.Signal) (err error) {
	for _, d := range []string{cfg.DataDir, cfg.SpoolDir(), cfg.QuarantineDir(), cfg.MaildirRoot} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	alog, err := audit.Open(cfg.AuditLogPath(), time.Now)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	defer closeInto(&err, alog.Close)

	dstore, err := boltstore.Open(cfg.DirectoryDB())
	if err != nil {
		return fmt.Errorf("directory store: %w", err)
	}
	defer closeInto(&err, dstore.Close)
	mailer := &relayMailer{}
	// One S/MIME trust (anchors, organisation CAs, CRLs) for the relay's
	// policy and the directory's certificate check (directory check,
	// expiry), so both judge a certificate alike; SIGHUP loads it again.
	trust, err := newSMIMETrust(cfg)
	if err != nil {
		return fmt.Errorf("smime: %w", err)
	}
	dir, err := directory.Open(ctx, directory.Config{
		Store: dstore, Logger: logger.With("component", "directory"), Audit: alog, Mailer: mailer,
		ChallengeFrom: cfg.ChallengeFrom, ReverifyAfter: cfg.ReverifyAfter, WarnBefore: cfg.WarnBefore,
		CertCheck: directoryCertCheck(trust.current), AuthCacheTTL: cfg.AuthCacheTTL,
	})
	if err != nil {
		return fmt.Errorf("directory: %w", err)
	}

	key, err := spool.LoadKey(cfg.SpoolKeyFile)
	if err != nil {
		return fmt.Errorf("relay.spool_key_file: %w", err)
	}
	qstore, err := queue.OpenBolt(cfg.QueueDB())
	if err != nil {
		return fmt.Errorf("queue store: %w", err)
	}
	defer closeInto(&err, qstore.Close)
	roots, err := rootPool(cfg.CAFiles)
	if err != nil {
		return err
	}
	// One policy signs and encrypts outbound mail and decrypts and
	// verifies mail for hosted endpoints; without a valid certificate a
	// recipient is held, never sent in clear.
	policy, err := smimepolicy.New(smimepolicy.Config{
		Hostname: cfg.Hostname, KeysDir: cfg.SMIMEKeysDir, Trust: trust.current(), LoadTrust: trust.load, Directory: dir, Accounts: dir,
		RelayODS: cfg.RelayODS, LegacyKeyTransport: cfg.LegacyKeyTransport,
		QuarantineDir: cfg.QuarantineDir(), QuarantineKey: key, MaildirRoot: cfg.MaildirRoot,
		Logger: logger.With("component", "smime"), Audit: alog,
	})
	if err != nil {
		return fmt.Errorf("smime: %w", err)
	}
	rel, err := relay.New(relay.Config{
		Hostname: cfg.Hostname, SpoolDir: cfg.SpoolDir(), SpoolKey: key, Store: qstore, Directory: dir,
		MaildirRoot: cfg.MaildirRoot, Logger: logger.With("component", "relay"), Audit: alog, Metrics: reg,
		RootCAs: roots, HopConcurrency: cfg.HopConcurrency, Concurrency: cfg.Concurrency,
		AttemptTimeout: cfg.AttemptTimeout, IdleTimeout: cfg.ConnIdle, RetryMin: cfg.RetryMin, RetryMax: cfg.RetryMax,
		DelayWarnAfter: cfg.DelayWarnAfter, GiveUpAfter: cfg.GiveUpAfter,
		Sealer: policy.Sealer(), Opener: policy.Opener(),
	})
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	mailer.relay = rel

	reloader, err := certs.NewReloader(cfg.CertFile, cfg.KeyFile, logger.With("component", "certs"))
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	handlers, err := recipientHandlers(cfg, dir) // serve_handlers.go: challenge replies
	if err != nil {
		return err
	}
	fax, err := startFaxBridge(cfg, dir, rel, key, alog, reg, logger, reloader.ServerConfig()) // serve_fax.go
	if err != nil {
		return err
	}
	defer closeInto(&err, fax.close)
	handlers = append(handlers, fax.handlers()...)
	srv, err := smtpd.New(smtpd.Config{
		Hostname: cfg.Hostname, TLS: reloader.ServerConfig(), Directory: dir, Queue: rel, Handlers: handlers,
		Logger: logger.With("component", "smtpd"), Metrics: reg, Audit: alog,
		TrustedNetworks: cfg.TrustedNetworks, MaxMessageBytes: cfg.MaxMessageBytes,
		MaxRecipients: cfg.MaxRecipients, MaxHeaderBytes: cfg.MaxHeaderBytes,
		MaxConnsPerIP: cfg.MaxConnsPerIP, MaxConns: cfg.MaxConns, IdleTimeout: cfg.IdleTimeout,
		DataTimeout: cfg.DataTimeout, MinDataRate: cfg.MinDataRate, MaxErrors: cfg.MaxErrors,
		MaxJunkCommands: cfg.MaxJunkCommands, GreetWait: cfg.GreetWait,
		MaxAuthFailures: cfg.MaxAuthFailures, AuthFailureWindow: cfg.AuthFailureWindow,
	})
	if err != nil {
		return fmt.Errorf("smtpd: %w", err)
	}

	// Bind every listener before serving any, so a port in use fails the
	// start rather than leaving half a server. The listeners file of a
	// previous run goes first: it names ports that are no longer ours.
	if err := removeListeners(cfg.ListenersFile()); err != nil {
		return err
	}
	type listener struct {
		ln   net.Listener
		mode smtpd.Mode
		key  string
	}
	var lns []listener
	defer func() {
		if err != nil {
			for _, l := range lns {
				l.ln.Close()
			}
		}
	}()
	for _, l := range []struct {
		addr, key string
		mode      smtpd.Mode
	}{
		{cfg.SubmissionListen, "smtp.submission_listen", smtpd.Submission},
		{cfg.SubmissionsListen, "smtp.submissions_listen", smtpd.SubmissionTLS},
		{cfg.MXListen, "smtp.mx_listen", smtpd.MX},
	} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			return fmt.Errorf("%s: %w", l.key, err)
		}
		lns = append(lns, listener{ln, l.mode, l.key})
	}
	var adminSrv *http.Server
	var adminLn net.Listener
	var token *adminToken
	if cfg.AdminListen != "" {
		if token, err = loadAdminToken(cfg.AdminTokenFile); err != nil {
			return err
		}
		if adminLn, err = net.Listen("tcp", cfg.AdminListen); err != nil {
			return fmt.Errorf("admin.listen: %w", err)
		}
		alogger := logger.With("component", "admin")
		adminSrv = newAdminServer(newAdminHandler(adminHandlers{
			Queue: rel.AdminHandler(), Quarantine: policy.AdminHandler(), Directory: api.New(dir, alogger), Fax: fax.admin(),
			Metrics: reg, Token: token, Logger: alogger,
		}), alogger)
	}

	// Start: relay first, so mail accepted by the listeners is delivered.
	runCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRelay()
	relayDone := make(chan error, 1)
	go func() { relayDone <- rel.Run(runCtx) }()

	fatal := make(chan error, len(lns)+1) // a listener that stops by itself
	var serving sync.WaitGroup
	for _, l := range lns {
		serving.Add(1)
		go func() {
			defer serving.Done()
			if err := srv.Serve(l.ln, l.mode); err != nil && !errors.Is(err, smtpd.ErrServerClosed) {
				fatal <- fmt.Errorf("%s: %w", l.key, err)
			}
		}()
		logger.Info("listening", "mode", l.mode.String(), "addr", l.ln.Addr().String())
	}
	if adminSrv != nil {
		serving.Add(1)
		go func() {
			defer serving.Done()
			if err := adminSrv.Serve(adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fatal <- fmt.Errorf("admin.listen: %w", err)
			}
		}()
		logger.Info("listening", "mode", "admin", "addr", adminLn.Addr().String())
	}
	// Port 0 in a listen address lets the kernel choose; the file says
	// what was bound (tests and scripts read it, never guess free ports).
	bound := boundListeners{PID: os.Getpid()}
	for _, l := range lns {
		bound.set(l.mode.String(), l.ln.Addr().String())
	}
	if adminLn != nil {
		bound.set("admin", adminLn.Addr().String())
	}
	fax.bound(&bound)
	if err := writeListeners(cfg.ListenersFile(), bound); err != nil {
		logger.Error("listeners file not written", "file", cfg.ListenersFile(), "err", err)
	}
	defer func() {
		if err := removeListeners(cfg.ListenersFile()); err != nil {
			logger.Warn("listeners file not removed", "err", err)
		}
	}()
	bgCtx, stopBg := context.WithCancel(ctx)
	defer stopBg()
	if cfg.ReloadInterval > 0 {
		go reloader.Watch(bgCtx, cfg.ReloadInterval)
		trustFiles := slices.Concat(cfg.SMIMETrustAnchors, cfg.SMIMEOrgCAs, cfg.SMIMECRLs)
		go policy.Watch(bgCtx, cfg.ReloadInterval, trustFiles...)
	}
	certFile, keysDir := cfg.CertFile, cfg.SMIMEKeysDir // cfg changes on SIGHUP; these do not
	expiry := &expiryCheck{dir: dir, mailer: mailer, from: cfg.ChallengeFrom, summaryTo: cfg.SummaryTo,
		interval: cfg.ExpiryCheck, warnBefore: cfg.WarnBefore, metrics: newExpiryMetrics(reg),
		logger: logger.With("component", "expiry"), now: time.Now,
		certs: func() ([]certInUse, []error) {
			return certsInUse(reloader.Certificate, certFile, keysDir)
		}}
	go expiry.loop(bgCtx)
	fax.run(bgCtx, fatal)
	if cfg.SummaryTo != "" {
		if _, err := dir.CheckRecipient(ctx, cfg.SummaryTo); err != nil {
			logger.Warn("directory.summary_to is not a verified endpoint; summary mail will not be delivered", "rcpt", cfg.SummaryTo, "err", err)
		}
	}
	logger.Info("nhsrelay started", "hostname", cfg.Hostname, "config", cfg.Path, "pid", os.Getpid())
	auditServer(alog, logger, "server.started", fmt.Sprintf("pid %d, config %s", os.Getpid(), cfg.Path))

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			logger.Info("shutting down: no new connections; finishing sessions and deliveries in flight")
			break loop
		case runErr = <-fatal:
			logger.Error("listener failed; shutting down", "err", runErr)
			break loop
		case err := <-relayDone:
			runErr = fmt.Errorf("relay stopped: %w", err)
			relayDone <- nil // for the wait below
			break loop
		case <-hup:
			var res reloadResult
			cfg, res = reload(cfg, reloadTargets{level: level, tls: reloader, token: token, smime: policy, smtp: srv}, logger)
			if res.refused {
				auditServerOutcome(alog, logger, "server.reloaded", "refused", "SIGHUP: "+res.String())
			} else {
				auditServer(alog, logger, "server.reloaded", "SIGHUP: "+res.String())
			}
		}
	}

	// Stop in order: no new mail, sessions finish (each 250 is already
	// durable), deliveries in flight finish, then the admin API and stores.
	stopBg()
	shCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shCtx); err != nil {
		logger.Warn("smtp shutdown", "err", err)
	}
	stopRelay()
	if err := <-relayDone; err != nil && runErr == nil {
		runErr = fmt.Errorf("relay: %w", err)
	}
	if adminSrv != nil {
		if err := adminSrv.Shutdown(shCtx); err != nil {
			logger.Warn("admin shutdown", "err", err)
		}
	}
	serving.Wait()
	if runErr == nil {
		logger.Info("nhsrelay stopped cleanly")
		auditServer(alog, logger, "server.stopped", "")
	} else {
		auditServerOutcome(alog, logger, "server.stopped", "failed", runErr.Error())
	}
	return runErr
}

// auditServer records the server's own life (start, reload, stop) so the
// audit log shows when nobody could have been delivering.
func auditServer(alog *audit.Log, logger *slog.Logger, action, detail string) {
	auditServerOutcome(alog, logger, action, "ok", detail)
}

func auditServerOutcome(alog *audit.Log, logger *slog.Logger, action, outcome, detail string) {
	err := alog.Record(audit.Event{Actor: "system", Action: action, Outcome: outcome, Detail: detail})
	if err != nil {
		logger.Error("audit record failed", "action", action, "err", err)
	}
}

// rootPool is the system roots plus the configured CA files, for verifying
// next hops. With no CA files it is nil: the relay uses the system roots.
func rootPool(files []string) (*x509.CertPool, error) {
	if len(files) == 0 {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_files: %w", err)
		}
		chain, err := certs.ParseCertificates(data)
		if err != nil || len(chain) == 0 {
			return nil, fmt.Errorf("tls.ca_files: %s: no certificate (%v)", f, err)
		}
		for _, c := range chain {
			pool.AddCert(c)
		}
	}
	return pool, nil
}
