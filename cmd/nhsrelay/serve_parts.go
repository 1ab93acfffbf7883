package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"nhsrelay/admin"
	"nhsrelay/audit"
	"nhsrelay/audit/timeline"
	"nhsrelay/certs"
	"nhsrelay/directory"
	"nhsrelay/directory/api"
	"nhsrelay/directory/expiry"
	"nhsrelay/directory/peers"
	"nhsrelay/internal/durable"
	"nhsrelay/relay"
	"nhsrelay/relay/queue"
	"nhsrelay/relay/smimepolicy"
	"nhsrelay/relay/spool"
	"nhsrelay/smtpd"
)

// server holds the parts serve wires together, each set by its open
// function, in serve's order.
type server struct {
	cfg    *config
	logger *slog.Logger
	level  *slog.LevelVar
	reg    *prometheus.Registry

	alog     *audit.Log
	trust    *certs.LiveTrust
	dir      *directory.Directory
	mailer   *relayMailer
	spoolKey []byte
	policy   *smimepolicy.Policy
	rel      *relay.Relay
	tls      *certs.Reloader
	smtp     *smtpd.Server
	token    *admin.Token  // nil when the admin API is off
	notice   *noticeParts  // notices_serve.go
	fax      *faxRuntime   // nil when [fax] is off (serve_fax.go)
	rdb      *redis.Client // nil unless redis.url is set (cluster mode)
	leases   queue.Leaser  // cluster mode: one node at a time delivers a message

	// Federation (serve_federation.go).
	peers     *peers.Manager
	fhirToken *admin.Token      // nil without federation.fhir_token_file
	dirAPI    http.Handler      // directory/api, made once by fhirAPI
	timelines *timeline.Indexer // serve_timeline.go (issue 12)

	// services are what run serves on listeners: the SMTP listeners,
	// the admin API, and any other intake. Bound before any serves.
	services []service
	// jobs run in the background until shutdown begins.
	jobs []func(context.Context)
	// closers run last, in reverse order (stores, the audit log).
	closers []func() error
}

// service is one listener and how to serve and stop it.
type service struct {
	name string // the listeners file's key and the log's mode: "submission", "admin", ...
	key  string // the config key of its address, for errors
	ln   net.Listener
	// serve blocks until stop; it returns nil once stopped.
	serve func(net.Listener) error
	// stop ends serve, letting requests in progress finish by ctx. Parts
	// sharing one server (the three SMTP listeners) share one stop, and
	// it is called once per listener: it must be safe to repeat.
	stop func(ctx context.Context) error
	// afterRelay stops the service after deliveries in flight finish
	// (the admin API, so the queue can be watched draining); the rest
	// stop first, so no new mail is taken during shutdown.
	afterRelay bool
}

func newServer(cfg *config, logger *slog.Logger, level *slog.LevelVar) *server {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &server{cfg: cfg, logger: logger, level: level, reg: reg}
}

// closeAll closes listeners not yet served (a failed start) and every
// closer, last opened first, into *err.
func (s *server) closeAll(err *error) {
	for _, sv := range s.services {
		sv.ln.Close() // already closed by stop after a run: harmless
	}
	for i := len(s.closers) - 1; i >= 0; i-- {
		closeInto(err, s.closers[i])
	}
}

func (s *server) component(name string) *slog.Logger { return s.logger.With("component", name) }

// makeFolders creates the folders in data_dir, fsyncing the parent of each
// one created (durable.MkdirAll), so that a spool or mailbox acknowledged
// into cannot vanish in a power cut.
func (s *server) makeFolders(context.Context) error {
	for _, d := range []string{s.cfg.DataDir, s.cfg.SpoolDir(), s.cfg.QuarantineDir(), s.cfg.MaildirRoot} {
		if err := durable.MkdirAll(d, 0o700, durable.SyncDir); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	return nil
}

func (s *server) openAudit(context.Context) error {
	alog, err := audit.OpenWith(s.cfg.AuditLogPath(), audit.Options{Logger: s.component("audit"), Metrics: s.reg})
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	s.alog = alog
	s.closers = append(s.closers, alog.Close)
	return nil
}

// openDirectory loads the S/MIME trust and opens the directory. One trust
// (anchors, organisation CAs, CRLs) serves the relay's policy and the
// directory's certificate check (directory check, expiry), so both judge a
// certificate alike; SIGHUP loads it again.
func (s *server) openDirectory(ctx context.Context) error {
	trust, err := certs.NewLiveTrust(smimeTrustFiles(s.cfg))
	if err != nil {
		return fmt.Errorf("smime: %w", err)
	}
	s.trust = trust
	dstore, err := s.directoryStore() // serve_redis.go: embedded or Redis
	if err != nil {
		return fmt.Errorf("directory store: %w", err)
	}
	s.mailer = &relayMailer{}
	dcfg := directoryConfig(s.cfg)
	dcfg.Store, dcfg.Logger, dcfg.Audit, dcfg.Mailer = dstore, s.component("directory"), s.alog, s.mailer
	dcfg.CertCheck = directoryCertCheck(trust.Current)
	dcfg.RequireSMIME = true // the relay seals all mail leaving it: one recipient decision for RCPT, check, API, FHIR
	if s.dir, err = directory.Open(ctx, dcfg); err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	return nil
}

// openRelay opens the queue and the S/MIME policy and starts nothing yet.
// One policy signs and encrypts outbound mail and decrypts and verifies
// mail for hosted endpoints; without a valid certificate a recipient is
// held, never sent in clear.
func (s *server) openRelay(context.Context) error {
	key, err := spool.LoadKey(s.cfg.SpoolKeyFile)
	if err != nil {
		return fmt.Errorf("relay.spool_key_file: %w", err)
	}
	s.spoolKey = key
	qstore, err := s.queueStore() // serve_redis.go: embedded or Redis
	if err != nil {
		return fmt.Errorf("queue store: %w", err)
	}
	roots, err := certs.RootPool(s.cfg.CAFiles)
	if err != nil {
		return fmt.Errorf("tls.ca_files: %w", err)
	}
	pcfg := smimePolicyConfig(s.cfg)
	pcfg.Trust, pcfg.LoadTrust, pcfg.Directory, pcfg.Accounts = s.trust.Current(), s.trust.Load, s.dir, s.dir
	pcfg.QuarantineKey, pcfg.Logger, pcfg.Audit = key, s.component("smime"), s.alog
	pcfg.Publisher = s.dir // key rollover: the newest valid pair's certificate is published
	if s.policy, err = smimepolicy.New(pcfg); err != nil {
		return fmt.Errorf("smime: %w", err)
	}
	rcfg := relayConfig(s.cfg)
	rcfg.SpoolKey, rcfg.Store, rcfg.Directory, rcfg.RootCAs = key, qstore, s.dir, roots
	rcfg.ExtraRootCAs = s.peers.TLSCAs // a federation peer's CA, for its MX only
	rcfg.Leases = s.leases
	if rcfg.Bodies, err = s.bodyStore(key); err != nil { // serve_redis.go: nil (spool folder) or Redis
		return fmt.Errorf("body store: %w", err)
	}
	rcfg.Logger, rcfg.Audit, rcfg.Metrics = s.component("relay"), s.alog, s.reg
	rcfg.Sealer, rcfg.Opener = s.policy.Sealer(), s.policy.Opener()
	s.notice.relayConfig(&rcfg)
	if s.rel, err = relay.New(rcfg); err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	s.mailer.relay = s.rel
	return nil
}

// forgetListeners removes the listeners file of a previous run before
// anything binds: it names ports that are no longer ours.
func (s *server) forgetListeners(context.Context) error {
	return removeListeners(s.cfg.ListenersFile())
}

// openSMTP builds the SMTP front door and binds its listeners.
func (s *server) openSMTP(context.Context) error {
	reloader, err := certs.NewReloader(s.cfg.CertFile, s.cfg.KeyFile, s.component("certs"))
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	s.tls = reloader
	handlers, err := recipientHandlers(s.cfg, s.dir) // serve_handlers.go: challenge replies
	if err != nil {
		return err
	}
	handlers = append(handlers, s.notice.handlers()...) // bounces of notice mail
	handlers = append(handlers, s.fax.handlers()...)    // T.37 fax mail
	scfg := smtpdConfig(s.cfg)
	scfg.TLS, scfg.Directory, scfg.Queue, scfg.Handlers = reloader.ServerConfig(), s.dir, s.rel, handlers
	scfg.Logger, scfg.Metrics, scfg.Audit = s.component("smtpd"), s.reg, s.alog
	if s.smtp, err = smtpd.New(scfg); err != nil {
		return fmt.Errorf("smtpd: %w", err)
	}
	for _, l := range []struct {
		addr, key string
		mode      smtpd.Mode
	}{
		{s.cfg.SubmissionListen, "smtp.submission_listen", smtpd.Submission},
		{s.cfg.SubmissionsListen, "smtp.submissions_listen", smtpd.SubmissionTLS},
		{s.cfg.MXListen, "smtp.mx_listen", smtpd.MX},
	} {
		if l.addr == "" {
			continue
		}
		mode := l.mode
		err := s.listen(service{name: mode.String(), key: l.key,
			serve: func(ln net.Listener) error { return ignoreClosed(s.smtp.Serve(ln, mode), smtpd.ErrServerClosed) },
			stop:  func(ctx context.Context) error { return ignoreClosed(s.smtp.Shutdown(ctx), smtpd.ErrServerClosed) },
		}, l.addr)
		if err != nil {
			return err
		}
	}
	return nil
}

// openAdmin builds the admin API (package admin) and mounts each part's
// handlers on it by path; a new part mounts its own here.
func (s *server) openAdmin(context.Context) error {
	if s.cfg.AdminListen == "" {
		return nil
	}
	token, err := admin.LoadToken(s.cfg.AdminTokenFile)
	if err != nil {
		return err
	}
	s.token = token
	alogger := s.component("admin")
	a := admin.New(admin.Config{Token: token, Metrics: s.reg, Logger: alogger})
	a.Mount(s.rel.AdminHandler(), "/v1/queue", "/v1/queue/")
	a.Mount(s.policy.AdminHandler(), "/v1/quarantine", "/v1/quarantine/")
	a.Mount(s.fhirAPI(), "/v1/directory/", "/v1/accounts", "/v1/accounts/")
	a.Mount(s.peers.Handler(), "/v1/directory/peers", "/v1/directory/peers/")
	// FHIR answers a wrong token with its own 401, an OperationOutcome.
	a.MountOpen(api.FHIRAuth(fhirTokenCheck(token, s.fhirToken), s.fhirAPI()), "/fhir/")
	s.notice.mount(a)
	if h := s.fax.admin(); h != nil {
		a.Mount(h, "/v1/faxes/")
	}
	a.Mount(operatorView(s.timelines.Handler()), "/v1/messages", "/v1/messages/") // serve_timeline.go
	srv := admin.NewServer(a.Handler(), alogger)
	return s.listen(service{name: "admin", key: "admin.listen", afterRelay: true,
		serve: func(ln net.Listener) error { return ignoreClosed(srv.Serve(ln), http.ErrServerClosed) },
		stop:  srv.Shutdown,
	}, s.cfg.AdminListen)
}

// openExpiry builds the expiry job (directory/expiry) over the directory
// and the certificates the server itself uses.
func (s *server) openExpiry(ctx context.Context) error {
	certFile, keysDir := s.cfg.CertFile, s.cfg.SMIMEKeysDir // cfg changes on SIGHUP; these do not
	job, err := expiry.New(expiry.Config{
		Directory: s.dir, Mailer: s.mailer, From: s.cfg.ChallengeFrom, SummaryTo: s.cfg.SummaryTo,
		Interval: s.cfg.ExpiryCheck, WarnBefore: s.cfg.WarnBefore, Metrics: s.reg, Logger: s.component("expiry"),
		Certs: func(now time.Time) ([]expiry.Cert, []error) {
			list, errs := certs.InUse(s.tls.Certificate, certFile, keysDir, now)
			out := make([]expiry.Cert, len(list))
			for i, c := range list {
				out[i] = expiry.Cert(c)
			}
			return out, errs
		},
	})
	if err != nil {
		return err
	}
	s.jobs = append(s.jobs, job.Run)
	if s.cfg.SummaryTo != "" {
		if _, err := s.dir.CheckRecipient(ctx, s.cfg.SummaryTo); err != nil {
			s.logger.Warn("directory.summary_to is not a verified endpoint; summary mail will not be delivered", "rcpt", s.cfg.SummaryTo, "err", err)
		}
	}
	return nil
}

// listen binds sv's address and adds it to the services. Every listener
// is bound before any serves, so a port in use fails the start rather
// than leaving half a server.
func (s *server) listen(sv service, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: %w", sv.key, err)
	}
	sv.ln = ln
	s.services = append(s.services, sv)
	return nil
}

// ignoreClosed is nil for closed, the error a server returns once stopped.
func ignoreClosed(err, closed error) error {
	if errors.Is(err, closed) {
		return nil
	}
	return err
}
