package peers

import (
	"crypto/x509"
	"strings"
)

// Scope is one peer's CA and what it is trusted for: S/MIME certificates
// of the peer's endpoints, the organisations (ODS codes) they belong to,
// and the TLS of the peer's MX hosts.
type Scope struct {
	Peer string
	CAs  []*x509.Certificate
	// AllowsODS reports whether the CA speaks for organisation ods (upper
	// case): one with a live endpoint imported from this peer. It reads
	// the Manager's current view, so it follows every sync.
	AllowsODS func(ods string) bool
}

// Scopes returns every peer's trust scope.
func (m *Manager) Scopes() []Scope {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []Scope
	for name, cas := range m.cas {
		out = append(out, Scope{Peer: name, CAs: cas, AllowsODS: func(ods string) bool {
			m.mu.RLock()
			defer m.mu.RUnlock()
			return m.odsOf[name][ods]
		}})
	}
	return out
}

// SMIMECAs returns every peer's CA certificates, to add to the S/MIME
// trust anchors: a certificate is only ever stored on a peer's endpoint
// after it verified against that peer's CA.
func (m *Manager) SMIMECAs() []*x509.Certificate {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*x509.Certificate
	for _, cas := range m.cas {
		out = append(out, cas...)
	}
	return out
}

// TLSCAs returns the CA certificates of the peers whose endpoints are
// delivered to host (a next hop's host name or address), to trust for
// that host's TLS only.
func (m *Manager) TLSCAs(host string) []*x509.Certificate {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*x509.Certificate
	for name, hosts := range m.mxOf {
		if hosts[host] {
			out = append(out, m.cas[name]...)
		}
	}
	return out
}
