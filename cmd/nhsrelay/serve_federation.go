package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"nhsrelay/audit"
	"nhsrelay/certs"
	"nhsrelay/directory"
	"nhsrelay/directory/api"
	"nhsrelay/directory/peers"
)

// openPeers loads the federation peers and makes their CAs part of the
// S/MIME trust in force: each peer's CA as an anchor, and as an
// organisation CA for that peer's organisations only. The relay's policy
// is reloaded when a peer is added or removed (reload is set by serve once
// the policy exists).
func openPeers(cfg *config, dir *directory.Directory, trust *smimeTrust, alog audit.Recorder, reg prometheus.Registerer,
	logger *slog.Logger, reload *func()) (*peers.Manager, error) {
	m, err := peers.New(peers.Config{Directory: dir, Store: peers.FileStore{Path: cfg.PeersFile()},
		Interval: cfg.PeerSyncInterval, Logger: logger.With("component", "peers"), Audit: alog, Metrics: reg,
		OnTrustChange: func() {
			if *reload != nil {
				(*reload)()
			}
		}})
	if err != nil {
		return nil, err
	}
	trust.addPeers = func(t *certs.Trust) {
		for _, s := range m.Scopes() {
			pool := x509.NewCertPool()
			for _, c := range s.CAs {
				t.Roots.AddCert(c)
				pool.AddCert(c)
			}
			t.ScopedOrgCAs = append(t.ScopedOrgCAs, certs.ScopedOrgCA{Name: "federation peer " + s.Peer, Pool: pool, Allows: s.AllowsODS})
		}
	}
	if _, err := trust.load(); err != nil {
		return nil, fmt.Errorf("smime: with federation peers: %w", err)
	}
	return m, nil
}

// publishedMX is the next hop the FHIR API publishes on hosted endpoints:
// federation.publish_mx, else the bound MX address if it is a loopback
// one (a development pair on one machine), else server.hostname with the
// bound MX port. "" if there is no MX listener.
func publishedMX(cfg *config, boundMX string) string {
	if cfg.PublishMX != "" {
		return cfg.PublishMX
	}
	host, port, err := net.SplitHostPort(boundMX)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return boundMX
	}
	return net.JoinHostPort(cfg.Hostname, port)
}

// fhirTokenCheck accepts the admin token and, if configured, the FHIR read
// token (re-read like the admin token: see adminToken).
func fhirTokenCheck(admin, fhir *adminToken) func(string) bool {
	return func(tok string) bool {
		return admin != nil && admin.check(tok) || fhir != nil && fhir.check(tok)
	}
}

// loadFHIRToken reads federation.fhir_token_file; nil if not configured.
func loadFHIRToken(cfg *config) (*adminToken, error) {
	if cfg.FHIRTokenFile == "" {
		return nil, nil
	}
	t, err := loadAdminToken(cfg.FHIRTokenFile)
	if err != nil {
		return nil, fmt.Errorf("federation.fhir_token_file: %s", strings.TrimPrefix(err.Error(), "admin token: "))
	}
	return t, nil
}

// fhirAuthed guards the admin listener's /fhir/: check if set, else the
// admin token; a refusal is a FHIR OperationOutcome.
func fhirAuthed(check func(string) bool, admin *adminToken, h http.Handler) http.Handler {
	if check == nil {
		check = admin.check
	}
	return api.FHIRAuth(check, h)
}

// fhirServer is the [federation] FHIR listener: HTTPS only, the read-only
// FHIR API behind the FHIR token, nothing else.
func fhirServer(h http.Handler, check func(string) bool, tlsCfg *certs.Reloader, logger *slog.Logger) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/fhir/", api.FHIRAuth(check, h))
	srv := newAdminServer(logRequests(logger, mux), logger)
	srv.TLSConfig = tlsCfg.ServerConfig()
	return srv
}

// serveFHIR runs srv on ln until it is shut down.
func serveFHIR(srv *http.Server, ln net.Listener, fatal chan<- error) {
	if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fatal <- fmt.Errorf("federation.fhir_listen: %w", err)
	}
}
