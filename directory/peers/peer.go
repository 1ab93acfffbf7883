package peers

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"nhsrelay/directory"
)

// Peer is another relay whose hosted endpoints this relay imports.
type Peer struct {
	Name string `json:"name"`
	// URL is the peer's FHIR base ("https://relay-b.nhs.example/fhir").
	URL string `json:"url"`
	// Token is the bearer token for the peer's FHIR API (its FHIR read
	// token). Secret: never shown by List or Show, never logged.
	Token string `json:"token"`
	// CA is the PEM of the peer's CA certificates: the anchor for the
	// peer's S/MIME certificates and for the TLS of its FHIR API and MX.
	CA      string    `json:"ca"`
	AddedAt time.Time `json:"added_at"`
	AddedBy string    `json:"added_by,omitempty"`
}

// Info is what List and Show tell about a peer: no token.
type Info struct {
	Name          string    `json:"name"`
	URL           string    `json:"url"`
	CAs           []string  `json:"cas"` // subject and SHA-256 fingerprint of each CA certificate
	AddedAt       time.Time `json:"added_at"`
	AddedBy       string    `json:"added_by,omitempty"`
	LastAttempt   time.Time `json:"last_attempt,omitzero"`
	LastSuccess   time.Time `json:"last_success,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
	LastDuration  string    `json:"last_duration,omitempty"`
	Endpoints     int       `json:"endpoints"` // live endpoints imported from it
	MXHosts       []string  `json:"mx_hosts,omitempty"`
	Organisations int       `json:"organisations"`
	// Last is what the last successful sync changed.
	Last *directory.PeerSyncResult `json:"last,omitempty"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,62}$`)

// check validates p and returns its CA certificates. Every problem names
// its field.
func (p *Peer) check() ([]*x509.Certificate, error) {
	var errs []error
	p.Name = strings.ToLower(strings.TrimSpace(p.Name))
	if !nameRE.MatchString(p.Name) {
		errs = append(errs, errors.New("name: 1 to 63 lower-case letters, digits, '.' and '-', starting with a letter or digit"))
	}
	p.URL = strings.TrimRight(strings.TrimSpace(p.URL), "/")
	if err := checkURL(p.URL); err != nil {
		errs = append(errs, fmt.Errorf("url: %w", err))
	}
	p.Token = strings.TrimSpace(p.Token)
	if len(p.Token) < 16 || strings.ContainsAny(p.Token, " \t\r\n") {
		errs = append(errs, errors.New("token: the peer's FHIR token, at least 16 characters without spaces, is required"))
	}
	cas, err := parseCAs(p.CA)
	if err != nil {
		errs = append(errs, fmt.Errorf("ca: %w", err))
	}
	return cas, errors.Join(errs...)
}

// checkURL allows https anywhere and plain http only on loopback (a
// development pair on one machine): the token and the directory must not
// cross a network in clear.
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q is not a base URL like https://relay.nhs.example/fhir", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		ip := net.ParseIP(u.Hostname())
		if u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("%s: plain http is allowed only to a loopback address; use https", s)
		}
	default:
		return fmt.Errorf("%s: scheme must be https (or http on loopback)", s)
	}
	return nil
}

// parseCAs reads PEM CA certificates; at least one, all CAs.
func parseCAs(s string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("a certificate does not parse: %v", err)
		}
		if !c.IsCA {
			return nil, fmt.Errorf("%q is not a CA certificate; give the peer's CA (its ca/ca.crt)", c.Subject.String())
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM CERTIFICATE: give the peer's CA certificate file")
	}
	return out, nil
}

func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}
