package peers

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"nhsrelay/directory"
	"nhsrelay/directory/api"
)

// Limits on what a peer may send: pages of pageSize, at most maxPages of
// them (a million endpoints), each at most maxPageBytes.
const (
	pageSize     = 1000
	maxPages     = 1000
	maxPageBytes = 64 << 20
)

// The parts of a FHIR R4 searchset Bundle of Endpoints that we read.
type bundle struct {
	ResourceType string `json:"resourceType"`
	Total        int    `json:"total"`
	Link         []struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	} `json:"link"`
	Entry []struct {
		Resource endpoint `json:"resource"`
	} `json:"entry"`
}

type endpoint struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Status       string `json:"status"`
	Extension    []struct {
		URL               string `json:"url"`
		ValueBase64Binary string `json:"valueBase64Binary"`
		ValueString       string `json:"valueString"`
	} `json:"extension"`
	ManagingOrganization *struct {
		Reference  string `json:"reference"`
		Display    string `json:"display"`
		Identifier *struct {
			System string `json:"system"`
			Value  string `json:"value"`
		} `json:"identifier"`
	} `json:"managingOrganization"`
	Contact []struct {
		Value string `json:"value"`
	} `json:"contact"`
	PayloadType []struct {
		Text string `json:"text"`
	} `json:"payloadType"`
	Address string `json:"address"`
}

// client returns an HTTP client that trusts the system roots and the
// peer's CA, TLS 1.2 or later.
func client(cas []*x509.Certificate, timeout time.Duration) *http.Client {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	for _, c := range cas {
		pool.AddCert(c)
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 2,
	}
	return &http.Client{Transport: tr, Timeout: timeout,
		// A redirect could carry the token elsewhere: not followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// fetched is one peer's full list, with what was wrong with parts of it.
type fetched struct {
	endpoints []directory.PeerEndpoint
	problems  []string // "addr: why" for certificates dropped or entries skipped
	pages     int
}

// knownCerts returns the certificates stored here for the peer's endpoint
// remoteID (nil if none): they verified against the peer's CA when they
// were imported, so the same bytes need only their dates checked again.
type knownCerts func(remoteID string) [][]byte

// fetch reads every page of the peer's Endpoint search. Any failure fails
// the whole fetch: a partial list must never retire what it missed.
func fetch(ctx context.Context, hc *http.Client, p Peer, cas []*x509.Certificate, known knownCerts, now time.Time) (fetched, error) {
	var out fetched
	base, _ := url.Parse(p.URL) // checked by Peer.check
	next := p.URL + "/Endpoint?_count=" + fmt.Sprint(pageSize)
	roots := x509.NewCertPool()
	for _, c := range cas {
		roots.AddCert(c)
	}
	for next != "" {
		if out.pages >= maxPages {
			return out, fmt.Errorf("more than %d pages: stopped", maxPages)
		}
		u, err := url.Parse(next)
		if err != nil || u.Scheme != base.Scheme || u.Host != base.Host {
			// The token goes only to the URL the administrator gave.
			return out, fmt.Errorf("next link %q leaves %s://%s: refused", next, base.Scheme, base.Host)
		}
		var b bundle
		if err := getJSON(ctx, hc, next, p.Token, &b); err != nil {
			return out, err
		}
		out.pages++
		if b.ResourceType != "Bundle" {
			return out, fmt.Errorf("%s: resourceType %q, want Bundle", next, b.ResourceType)
		}
		for _, e := range b.Entry {
			pe, ok, problem := toPeerEndpoint(e.Resource, p, roots, known, now)
			if problem != "" {
				out.problems = append(out.problems, problem)
			}
			if ok {
				out.endpoints = append(out.endpoints, pe)
			}
		}
		next = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
	}
	return out, nil
}

func getJSON(ctx context.Context, hc *http.Client, u, token string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/fhir+json")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", redact(u), err)
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, maxPageBytes+1)
	if resp.StatusCode != http.StatusOK {
		var oo struct {
			Issue []struct {
				Diagnostics string `json:"diagnostics"`
			} `json:"issue"`
		}
		msg := resp.Status
		if json.NewDecoder(io.LimitReader(body, 64<<10)).Decode(&oo) == nil && len(oo.Issue) > 0 {
			msg += ": " + oo.Issue[0].Diagnostics
		}
		if resp.StatusCode == http.StatusUnauthorized {
			msg += " (check the token given to peer add: the peer's FHIR read token)"
		}
		return fmt.Errorf("GET %s: %s", redact(u), msg)
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return fmt.Errorf("GET %s: %w", redact(u), err)
	}
	if len(data) > maxPageBytes {
		return fmt.Errorf("GET %s: page larger than %d MiB", redact(u), maxPageBytes>>20)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("GET %s: not a FHIR JSON Bundle: %w", redact(u), err)
	}
	return nil
}

// redact drops the query, which is ours and not secret, but long.
func redact(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i]
	}
	return u
}

// toPeerEndpoint converts one published Endpoint. ok is false for an
// entry not to import (not hosted at the peer, or unreadable); problem
// says what was wrong, if anything.
func toPeerEndpoint(e endpoint, p Peer, roots *x509.CertPool, known knownCerts, now time.Time) (pe directory.PeerEndpoint, ok bool, problem string) {
	var ders [][]byte
	for _, x := range e.Extension {
		switch x.URL {
		case api.ExtNextHop:
			pe.NextHop = directory.NextHop{Kind: directory.HopHost, Host: x.ValueString, TLS: directory.TLSVerified}
		case api.ExtSMIMECertificate:
			der, err := base64.StdEncoding.DecodeString(x.ValueBase64Binary)
			if err != nil {
				return pe, false, "Endpoint/" + e.ID + ": a certificate is not base64"
			}
			ders = append(ders, der)
		}
	}
	if pe.NextHop.Host == "" {
		return pe, false, "" // not hosted at the peer: another relay's, not passed on
	}
	switch e.Status {
	case "off", "entered-in-error":
		// Retired or not yet verified at the peer: as if not published,
		// so a sync retires a copy made earlier (and brings it back if
		// the peer verifies it again).
		return pe, false, ""
	}
	addr, err := mailtoAddress(e.Address)
	if err != nil {
		return pe, false, "Endpoint/" + e.ID + ": " + err.Error()
	}
	pe.RemoteID, pe.Address = e.ID, addr
	if mo := e.ManagingOrganization; mo != nil {
		pe.OrgName = mo.Display
		if mo.Identifier != nil && mo.Identifier.System == api.ODSSystem {
			pe.ODS = mo.Identifier.Value
		} else {
			pe.ODS = strings.TrimPrefix(mo.Reference, "Organization/")
		}
	}
	for _, c := range e.Contact {
		pe.Contacts = append(pe.Contacts, c.Value)
	}
	if len(e.PayloadType) > 0 {
		pe.Purpose = e.PayloadType[0].Text
	}
	pe.Active = e.Status == "active"
	if !pe.Active {
		pe.Reason = "its FHIR status is " + e.Status
	}
	var leaf *x509.Certificate
	var why string
	if known != nil && sameDER(known(e.ID), ders) {
		leaf, why = knownLeaf(ders, addr, now)
	} else {
		leaf, why = checkCertificates(ders, addr, roots, now)
	}
	pe.Evidence = "federation peer " + p.Name + " at " + p.URL
	if leaf != nil {
		pe.Certificates = ders
		pe.Evidence += "; certificate " + fingerprint(leaf.Raw)
	} else if len(ders) > 0 {
		problem = addr + ": certificates not imported: " + why
		pe.Evidence += "; no certificate imported"
	}
	return pe, true, problem
}

// checkCertificates finds among ders the certificate for addr that chains
// to the peer's CA (roots), with the others as intermediates, for
// emailProtection, valid at now. nil and why if none does.
func checkCertificates(ders [][]byte, addr string, roots *x509.CertPool, now time.Time) (*x509.Certificate, string) {
	var certs []*x509.Certificate
	inter := x509.NewCertPool()
	for _, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, "a certificate does not parse"
		}
		certs = append(certs, c)
		if c.IsCA {
			inter.AddCert(c)
		}
	}
	why := "none names " + addr
	for _, c := range certs {
		if !directory.NamesEndpoint(c, directory.Endpoint{Address: addr}) {
			continue
		}
		_, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}})
		if err == nil {
			return c, ""
		}
		why = "the certificate for " + addr + " does not verify against the peer's CA: " + err.Error()
	}
	return nil, why
}

func sameDER(a, b [][]byte) bool {
	if len(a) != len(b) || len(a) == 0 {
		return false
	}
	for i := range a {
		if string(a[i]) != string(b[i]) {
			return false
		}
	}
	return true
}

// knownLeaf is checkCertificates for certificates that verified when they
// were imported: the one naming addr, if it is still within its dates.
func knownLeaf(ders [][]byte, addr string, now time.Time) (*x509.Certificate, string) {
	for _, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil || !directory.NamesEndpoint(c, directory.Endpoint{Address: addr}) {
			continue
		}
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return nil, "the certificate for " + addr + " is outside its validity dates"
		}
		return c, ""
	}
	return nil, "none names " + addr
}

// mailtoAddress reads Endpoint.address as api writes it: a mailto: URI,
// "mailto:*@domain" for a whole domain.
func mailtoAddress(s string) (string, error) {
	if len(s) < 7 || !strings.EqualFold(s[:7], "mailto:") {
		return "", fmt.Errorf("address %q is not a mailto: URI", s)
	}
	a, err := url.PathUnescape(s[7:])
	if err != nil {
		return "", fmt.Errorf("address %q: %v", s, err)
	}
	return strings.TrimPrefix(a, "*@"), nil
}
