package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
)

// run starts the relay, then every service and job, and waits for ctx, a
// failed service, the relay stopping by itself, or SIGHUP (reload); then
// it stops the parts in order.
func (s *server) run(ctx context.Context, hup <-chan os.Signal) error {
	cfg, logger := s.cfg, s.logger
	// Relay first, so mail accepted by the listeners is delivered.
	runCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRelay()
	relayDone := make(chan error, 1)
	go func() { relayDone <- s.rel.Run(runCtx) }()

	fatal := make(chan error, len(s.services)) // a service that stops by itself
	var serving sync.WaitGroup
	bound := boundListeners{PID: os.Getpid()}
	for _, sv := range s.services {
		serving.Add(1)
		go func() {
			defer serving.Done()
			if err := sv.serve(sv.ln); err != nil {
				fatal <- fmt.Errorf("%s: %w", sv.key, err)
			}
		}()
		logger.Info("listening", "mode", sv.name, "addr", sv.ln.Addr().String())
		bound.set(sv.name, sv.ln.Addr().String())
	}
	// Port 0 in a listen address lets the kernel choose; the file says
	// what was bound (tests and scripts read it, never guess free ports).
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
		go s.tls.Watch(bgCtx, cfg.ReloadInterval)
		trustFiles := slices.Concat(cfg.SMIMETrustAnchors, cfg.SMIMEOrgCAs, cfg.SMIMECRLs)
		go s.policy.Watch(bgCtx, cfg.ReloadInterval, trustFiles...)
	}
	for _, job := range s.jobs {
		go job(bgCtx)
	}
	logger.Info("nhsrelay started", "hostname", cfg.Hostname, "config", cfg.Path, "pid", os.Getpid())
	auditServer(s.alog, logger, "server.started", fmt.Sprintf("pid %d, config %s", os.Getpid(), cfg.Path))

	runErr := s.wait(ctx, hup, fatal, relayDone)

	// Stop in order: no new mail, sessions finish (each 250 is already
	// durable), deliveries in flight finish, then the admin API and stores.
	stopBg()
	shCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	s.stopServices(shCtx, false)
	stopRelay()
	if err := <-relayDone; err != nil && runErr == nil {
		runErr = fmt.Errorf("relay: %w", err)
	}
	s.stopServices(shCtx, true)
	serving.Wait()
	if runErr == nil {
		logger.Info("nhsrelay stopped cleanly")
		auditServer(s.alog, logger, "server.stopped", "")
	} else {
		auditServerOutcome(s.alog, logger, "server.stopped", "failed", runErr.Error())
	}
	return runErr
}

// wait runs until a reason to stop, reloading on each SIGHUP.
func (s *server) wait(ctx context.Context, hup <-chan os.Signal, fatal, relayDone chan error) error {
	for {
		select {
		case <-ctx.Done():
			s.logger.Info("shutting down: no new connections; finishing sessions and deliveries in flight")
			return nil
		case err := <-fatal:
			s.logger.Error("listener failed; shutting down", "err", err)
			return err
		case err := <-relayDone:
			relayDone <- nil // for the wait in run
			return fmt.Errorf("relay stopped: %w", err)
		case <-hup:
			var res reloadResult
			targets := reloadTargets{level: s.level, tls: s.tls, token: s.token, smime: s.policy, smtp: s.smtp}
			s.cfg, res = reload(s.cfg, targets, s.logger)
			if res.refused {
				auditServerOutcome(s.alog, s.logger, "server.reloaded", "refused", "SIGHUP: "+res.String())
			} else {
				auditServer(s.alog, s.logger, "server.reloaded", "SIGHUP: "+res.String())
			}
		}
	}
}

// stopServices stops the services of one stage (afterRelay or not), each
// server once.
func (s *server) stopServices(ctx context.Context, afterRelay bool) {
	for _, sv := range s.services {
		if sv.afterRelay != afterRelay {
			continue
		}
		if err := sv.stop(ctx); err != nil {
			s.logger.Warn("shutdown", "mode", sv.name, "err", err)
		}
	}
}
