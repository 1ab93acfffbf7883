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
	"reflect"
	"strconv"
	"strings"
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
	_, err := m.relay.Submit(ctx, relay.Envelope{From: from, Recipients: to}, msg)
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
	dir, err := directory.Open(ctx, directory.Config{
		Store: dstore, Logger: logger.With("component", "directory"), Audit: alog, Mailer: mailer,
		ChallengeFrom: cfg.ChallengeFrom, ReverifyAfter: cfg.ReverifyAfter, WarnBefore: cfg.WarnBefore,
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
	anchors, err := certs.LoadPool(cfg.SMIMETrustAnchors...)
	if err != nil {
		return fmt.Errorf("smime.trust_anchors: %w", err)
	}
	// One policy signs and encrypts outbound mail and decrypts and
	// verifies mail for hosted endpoints; without a valid certificate a
	// recipient is held, never sent in clear.
	policy, err := smimepolicy.New(smimepolicy.Config{
		Hostname: cfg.Hostname, KeysDir: cfg.SMIMEKeysDir, Roots: anchors, Directory: dir, Accounts: dir,
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
	srv, err := smtpd.New(smtpd.Config{
		Hostname: cfg.Hostname, TLS: reloader.ServerConfig(), Directory: dir, Queue: rel,
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
	// start rather than leaving half a server.
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
			Queue: rel.AdminHandler(), Directory: api.New(dir, alogger), Metrics: reg, Token: token, Logger: alogger,
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
	bgCtx, stopBg := context.WithCancel(ctx)
	defer stopBg()
	if cfg.ReloadInterval > 0 {
		go reloader.Watch(bgCtx, cfg.ReloadInterval)
	}
	go expiryLoop(bgCtx, dir, mailer, cfg.ChallengeFrom, cfg.SummaryTo, cfg.ExpiryCheck, newExpiryMetrics(reg),
		logger.With("component", "directory"))
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
			cfg = reload(cfg, level, reloader, token, logger)
			if err := policy.Reload(); err != nil {
				logger.Error("S/MIME key reload", "err", err)
			}
			auditServer(alog, logger, "server.reloaded", "SIGHUP")
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

// reload is SIGHUP: re-read the TLS certificate and key, the admin token
// and the config file (the caller reloads the S/MIME keys). Of the config, only server.log_level takes effect
// at run time; other changes are reported as needing a restart. A config
// that no longer validates is refused whole and the running one kept.
func reload(cur *config, level *slog.LevelVar, r *certs.Reloader, tok *adminToken, logger *slog.Logger) *config {
	logger.Info("SIGHUP: reloading certificates, S/MIME keys, admin token and config")
	if err := r.Reload(); err != nil {
		logger.Error("TLS reload failed; keeping the old certificate", "err", err)
	}
	if tok != nil {
		if err := tok.reload(); err != nil {
			logger.Error("admin token reload failed; keeping the old token", "err", err)
		}
	}
	next, err := loadConfig(cur.Path)
	if err != nil {
		logger.Error("config reload failed; keeping the running config", "err", err)
		return cur
	}
	if next.LogLevel != cur.LogLevel {
		level.Set(next.LogLevel)
		logger.Info("log level changed", "level", next.LogLevel.String())
	}
	if changed := restartOnly(cur, next); len(changed) > 0 {
		logger.Warn("config changes that take effect only after a restart", "keys", changed)
	}
	// Keep reporting restart-only changes against what is running.
	kept := *cur
	kept.LogLevel = next.LogLevel
	return &kept
}

// restartOnly names the keys that differ between a and b other than the
// ones reload applies.
func restartOnly(a, b *config) []string {
	va, vb := reflect.ValueOf(*a), reflect.ValueOf(*b)
	var names []string
	for i := range va.NumField() {
		name := va.Type().Field(i).Tag.Get("key")
		if name == "" || name == "server.log_level" {
			continue
		}
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			names = append(names, name)
		}
	}
	return names
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

// expiryMetrics are the expiry check's own figures; the directory has no
// metrics of its own.
type expiryMetrics struct {
	due       prometheus.Gauge
	suspended prometheus.Counter
	lastRun   prometheus.Gauge
	failures  prometheus.Counter
}

func newExpiryMetrics(reg prometheus.Registerer) *expiryMetrics {
	m := &expiryMetrics{
		due: prometheus.NewGauge(prometheus.GaugeOpts{Name: "nhsrelay_directory_expiry_due",
			Help: "Verifications and certificates due within warn_before, at the last expiry check."}),
		suspended: prometheus.NewCounter(prometheus.CounterOpts{Name: "nhsrelay_directory_expiry_suspended_total",
			Help: "Endpoints suspended by the expiry check."}),
		lastRun: prometheus.NewGauge(prometheus.GaugeOpts{Name: "nhsrelay_directory_expiry_last_run_timestamp_seconds",
			Help: "When the expiry check last completed."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "nhsrelay_directory_expiry_failures_total",
			Help: "Expiry checks that failed."}),
	}
	reg.MustRegister(m.due, m.suspended, m.lastRun, m.failures)
	return m
}

// expiryLoop runs the directory's expiry check at start and then every
// interval. The directory logs and audits each notice; here the run's
// summary (one line per notice, ExpiryReport.Lines) is logged once and, if
// summaryTo is set, mailed there through the relay.
func expiryLoop(ctx context.Context, dir *directory.Directory, mailer directory.Mailer, from, summaryTo string,
	interval time.Duration, m *expiryMetrics, logger *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		rep, err := dir.CheckExpiry(audit.WithActor(ctx, "expiry-check"))
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			m.failures.Inc()
			logger.Error("expiry check failed", "err", err)
		default:
			m.due.Set(float64(len(rep.Warnings)))
			m.suspended.Add(float64(len(rep.Suspended)))
			m.lastRun.Set(float64(time.Now().Unix()))
			if len(rep.Lines) > 0 {
				logger.Warn("expiry summary", "checked", rep.Checked, "warnings", len(rep.Warnings),
					"suspended", len(rep.Suspended), "lines", rep.Lines)
				if summaryTo != "" {
					msg := expirySummaryMail(from, summaryTo, rep, time.Now())
					if err := mailer.Send(audit.WithActor(ctx, "expiry-check"), from, []string{summaryTo}, strings.NewReader(msg)); err != nil {
						logger.Error("expiry summary mail not queued", "rcpt", summaryTo, "err", err)
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// expirySummaryMail is the administrators' summary as an RFC 5322 message
// with CRLF line endings. Lines come from the directory and hold addresses,
// ODS codes and dates, never clinical content; control characters are
// dropped so no line can end the header or the message early.
func expirySummaryMail(from, to string, rep directory.ExpiryReport, now time.Time) string {
	var b strings.Builder
	b.WriteString("From: nhsrelay <" + from + ">\r\n")
	b.WriteString("To: <" + to + ">\r\n")
	b.WriteString("Subject: nhsrelay directory expiry summary " + now.UTC().Format(time.DateOnly) + "\r\n")
	b.WriteString("Date: " + now.Format(time.RFC1123Z) + "\r\n")
	b.WriteString("Message-ID: <expiry." + strconv.FormatInt(now.UnixNano(), 36) + "." + from + ">\r\n")
	b.WriteString("Auto-Submitted: auto-generated\r\n") // RFC 3834 §5
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	fmt.Fprintf(&b, "%d verified endpoints checked: %d due soon, %d suspended.\r\n\r\n", rep.Checked, len(rep.Warnings), len(rep.Suspended))
	for _, l := range rep.Lines {
		b.WriteString(strings.Map(func(r rune) rune {
			if r < ' ' || r == 0x7f {
				return ' '
			}
			return r
		}, l) + "\r\n")
	}
	return b.String()
}
