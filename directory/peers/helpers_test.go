package peers

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"nhsrelay/certs/certstest"
	"nhsrelay/directory"
	"nhsrelay/directory/api"
	"nhsrelay/directory/directorytest"
)

const (
	peerToken = "peer-fhir-token-0123456789"
	peerMX    = "127.0.0.1:2525"
)

// remote is a peer relay: its own directory and CA, its FHIR API served
// over TLS on loopback (a certificate from its CA) behind a token, as
// cmd serves it.
type remote struct {
	d   *directory.Directory
	ca  *certstest.CA
	srv *httptest.Server
}

// startRemote serves a directory with organisation RX9 (hosted endpoints
// publish peerMX as their next hop); add endpoints with add.
func startRemote(t testing.TB) *remote {
	t.Helper()
	d := directorytest.New(t)
	if err := d.PutOrganisation(t.Context(), directory.Organisation{ODS: "RX9", Name: "Northfield Trust"}); err != nil {
		t.Fatal(err)
	}
	return serveRemote(t, certstest.NewCA(t), d)
}

// serveRemote serves d's FHIR API as a peer whose CA is ca.
func serveRemote(t testing.TB, ca *certstest.CA, d *directory.Directory) *remote {
	t.Helper()
	r := &remote{ca: ca, d: d}
	h := api.FHIRAuth(func(tok string) bool { return tok == peerToken },
		api.New(r.d, slog.New(slog.DiscardHandler), api.PublishNextHop(peerMX)))
	r.srv = httptest.NewUnstartedServer(h)
	r.srv.TLS = &tls.Config{Certificates: []tls.Certificate{r.ca.TLSCertificate(t, "127.0.0.1")}}
	r.srv.StartTLS()
	t.Cleanup(r.srv.Close)
	return r
}

func (r *remote) caPEM() string { return string(certstestPEM(r.ca.Cert)) }

func (r *remote) peer(name string) Peer {
	return Peer{Name: name, URL: r.srv.URL + "/fhir", Token: peerToken, CA: r.caPEM()}
}

// hosted adds a verified endpoint of RX9 hosted at the remote, with a
// certificate from its CA.
func (r *remote) hosted(t testing.TB, addr string) directory.Endpoint {
	t.Helper()
	c, _ := r.ca.SMIMECertificate(t, addr)
	return r.add(t, directory.Endpoint{Address: addr, NextHop: directory.NextHop{Kind: directory.HopHosted},
		Certificates: [][]byte{c.Raw}})
}

// add adds e to RX9 at the remote and verifies it.
func (r *remote) add(t testing.TB, e directory.Endpoint) directory.Endpoint {
	t.Helper()
	e.ODS = "RX9"
	n, err := r.d.AddEndpoint(t.Context(), e)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.d.Attest(t.Context(), n.ID, "test"); err != nil {
		t.Fatal(err)
	}
	return n
}

func certstestPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// local is this relay: a directory with an audit log, and its Manager.
type local struct {
	d     *directory.Directory
	m     *Manager
	audit *directorytest.AuditLog
	reg   *prometheus.Registry
}

func newLocal(t testing.TB, eps ...directory.Endpoint) *local {
	t.Helper()
	l := &local{audit: &directorytest.AuditLog{}, reg: prometheus.NewRegistry()}
	l.d = directorytest.Open(t, func(c *directory.Config) { c.Audit = l.audit }, eps...)
	m, err := New(Config{Directory: l.d, Store: FileStore{Path: filepath.Join(t.TempDir(), "peers.json")},
		Audit: l.audit, Metrics: l.reg, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	l.m = m
	return l
}

// byAddress returns the live endpoint for addr, or fails the test.
func byAddress(t *testing.T, d *directory.Directory, addr string) directory.Endpoint {
	t.Helper()
	for _, e := range d.Endpoints(t.Context(), directory.Filter{Address: addr}) {
		if e.Status != directory.StatusRetired && e.Address == addr {
			return e
		}
	}
	t.Fatalf("no live endpoint %s", addr)
	return directory.Endpoint{}
}

func counter(t *testing.T, reg *prometheus.Registry, name, peer string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "peer" && lp.GetValue() == peer {
					if c := m.GetCounter(); c != nil {
						return c.GetValue()
					}
				}
			}
		}
	}
	return 0
}
