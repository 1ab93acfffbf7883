package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"nhsrelay/audit"
	"nhsrelay/relay"
)

// shutdownGrace bounds how long SMTP sessions in a transaction may take to
// finish after SIGTERM; deliveries in flight are waited for separately
// (each is bounded by the relay's attempt timeout).
const shutdownGrace = 30 * time.Second

// runServe runs every listener until SIGTERM or SIGINT.
func runServe(args []string) error {
	path, err := parseConfigOnly("serve", args)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(path)
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

// serve wires the parts together and runs them until ctx ends. Each part
// is opened by its own function below (serve_parts.go), in an order where
// every part finds the ones it needs; a new part (an intake, a job) gets
// its own function and one line in the list. Then every listener is bound
// before any serves (serve_run.go), and on the way out the parts stop in
// order: no new mail, sessions finish, deliveries in flight finish, then
// the admin API and the stores close.
func serve(ctx context.Context, cfg *config, logger *slog.Logger, level *slog.LevelVar, hup <-chan os.Signal) (err error) {
	s := newServer(cfg, logger, level)
	defer s.closeAll(&err)
	for _, open := range []func(context.Context) error{
		s.makeFolders,     // data_dir, spool, quarantine, maildir: durable
		s.openAudit,       // audit log: everyone writes to it
		s.openRedis,       // cluster mode only: the shared Redis, checked (serve_redis.go)
		s.openTimeline,    // message timelines, an index over the audit log (serve_timeline.go)
		s.openDirectory,   // S/MIME trust, directory store and directory
		s.openPeers,       // federation peers: their CAs in the trust, the sync job (serve_federation.go)
		s.loadFHIRToken,   // federation.fhir_token_file
		s.openNoticeParts, // DKIM signer and MTA-STS the relay uses for notice mail
		s.openRelay,       // spool key, queue store, S/MIME policy, relay
		s.openNotices,     // notices store, service, its HTTPS API (notices_serve.go)
		s.openFax,         // fax bridge (serve_fax.go): T.37 handler, spool folder, upload listener
		s.forgetListeners, // the listeners file of a previous run
		s.openSMTP,        // TLS reloader, recipient handlers, smtpd and its listeners
		s.openAdmin,       // admin API: token, mounted handlers, its listener
		s.openFHIR,        // [federation] FHIR listener for peers (serve_federation.go)
		s.openStatus,      // senders' status API (serve_timeline.go)
		s.openExpiry,      // expiry job (started with the other jobs)
		s.openCluster,     // cluster mode: queue rescan, directory refresh (serve_redis.go)
	} {
		if err := open(ctx); err != nil {
			return err
		}
	}
	return s.run(ctx, hup)
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
