package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"strings"

	"nhsrelay/admin"
	"nhsrelay/certs"
	"nhsrelay/directory/api"
	"nhsrelay/directory/peers"
	"nhsrelay/smtpd"
)

// openPeers loads the federation peers (directory/peers) and makes their
// CAs part of the S/MIME trust in force: each peer's CA as an anchor, and
// as an organisation CA for that peer's organisations only. A peer added
// or removed reloads the relay's policy at once; the relay trusts a
// peer's CA for the TLS of that peer's MX host only (openRelay passes
// TLSCAs); the sync loop runs with the other jobs.
func (s *server) openPeers(context.Context) error {
	m, err := peers.New(peers.Config{Directory: s.dir, Store: peers.FileStore{Path: s.cfg.PeersFile()},
		Interval: s.cfg.PeerSyncInterval, Logger: s.component("peers"), Audit: s.alog, Metrics: s.reg,
		OnTrustChange: func() {
			if s.policy != nil {
				s.policy.Reload() // logs its own problems
			}
		}})
	if err != nil {
		return fmt.Errorf("federation: %w", err)
	}
	s.peers = m
	s.trust.Extend = func(t *certs.Trust) {
		for _, sc := range m.Scopes() {
			pool := x509.NewCertPool()
			for _, c := range sc.CAs {
				t.Roots.AddCert(c)
				pool.AddCert(c)
			}
			t.ScopedOrgCAs = append(t.ScopedOrgCAs, certs.ScopedOrgCA{Name: "federation peer " + sc.Peer, Pool: pool, Allows: sc.AllowsODS})
		}
	}
	if _, err := s.trust.Load(); err != nil {
		return fmt.Errorf("smime: with federation peers: %w", err)
	}
	s.jobs = append(s.jobs, m.Run)
	return nil
}

// openFHIR binds the [federation] FHIR listener: HTTPS only (the server
// certificate), the read-only FHIR API behind the FHIR read token.
func (s *server) openFHIR(context.Context) error {
	if s.cfg.FHIRListen == "" {
		return nil
	}
	logger := s.component("fhir")
	mux := http.NewServeMux()
	mux.Handle("/fhir/", api.FHIRAuth(fhirTokenCheck(nil, s.fhirToken), s.fhirAPI()))
	srv := admin.NewServer(admin.LogRequests(logger, mux), logger)
	srv.TLSConfig = s.tls.ServerConfig()
	return s.listen(service{name: "fhir", key: "federation.fhir_listen", afterRelay: true,
		serve: func(ln net.Listener) error { return ignoreClosed(srv.ServeTLS(ln, "", ""), http.ErrServerClosed) },
		stop:  srv.Shutdown,
	}, s.cfg.FHIRListen)
}

// fhirAPI is the directory API (admin and FHIR) publishing this relay's MX
// as the next hop of its hosted endpoints; made once, after the SMTP
// listeners are bound.
func (s *server) fhirAPI() http.Handler {
	if s.dirAPI == nil {
		bound := ""
		for _, sv := range s.services {
			if sv.name == smtpd.MX.String() {
				bound = sv.ln.Addr().String()
			}
		}
		s.dirAPI = api.New(s.dir, s.component("directory-api"), api.PublishNextHop(publishedMX(s.cfg, bound)))
	}
	return s.dirAPI
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
// token.
func fhirTokenCheck(adminTok, fhir *admin.Token) func(string) bool {
	return func(tok string) bool {
		return adminTok != nil && adminTok.Check(tok) || fhir != nil && fhir.Check(tok)
	}
}

// loadFHIRToken reads federation.fhir_token_file; nil if not configured.
func (s *server) loadFHIRToken(context.Context) error {
	if s.cfg.FHIRTokenFile == "" {
		return nil
	}
	t, err := admin.LoadToken(s.cfg.FHIRTokenFile)
	if err != nil {
		return fmt.Errorf("federation.fhir_token_file: %s", strings.TrimPrefix(err.Error(), "admin token "))
	}
	s.fhirToken = t
	return nil
}
