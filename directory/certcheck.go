package directory

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// CertCheck judges one S/MIME certificate for encryption at now, as the
// relay will when it seals a message: intermediates are the endpoint's
// other stored certificates. It returns nil if the certificate may be
// used, or an error whose text says why not in words ("certificate for
// gp@nhs.example is not issued by a trusted NHS CA"). cmd wires it to
// certs.ValidateSMIME with the S/MIME trust anchors (the directory does not
// import certs).
type CertCheck func(cert *x509.Certificate, intermediates []*x509.Certificate, now time.Time) error

// NamesEndpoint reports whether c is a certificate for e (RFC 8550 §3), by
// the rule the relay uses to pick an endpoint's encryption certificate
// (relay/smimepolicy): an rfc822Name subjectAltName that is e's mailbox, or
// for a whole-domain endpoint an address in the domain. A certificate
// naming only e's organisation by ODS code does not name e: it signs for
// the organisation, and the relay never encrypts an endpoint's mail to it
// (whoever holds the organisation's key could otherwise read every
// endpoint of the organisation). A CA certificate names no endpoint.
func NamesEndpoint(c *x509.Certificate, e Endpoint) bool {
	if c == nil || c.IsCA {
		return false
	}
	addr := strings.ToLower(e.Address)
	if addr == "" {
		return false
	}
	for _, a := range c.EmailAddresses {
		a = strings.ToLower(a)
		if a == addr || (!strings.Contains(addr, "@") && strings.HasSuffix(a, "@"+addr)) {
			return true
		}
	}
	return false
}

// isOrgCert reports whether c is e's organisation's own certificate (its
// ODS code, no address of e): one that signs, but never receives e's mail.
func isOrgCert(c *x509.Certificate, e Endpoint) bool {
	ods, ok := certODS(c)
	return ok && !c.IsCA && e.ODS != "" && strings.EqualFold(ods, e.ODS) && !NamesEndpoint(c, e)
}

// orgCertProblem is what the directory says of an organisation certificate
// stored on an endpoint.
func orgCertProblem(e Endpoint) string {
	return "names only organisation " + strings.ToUpper(e.ODS) + " (ODS code), which signs but cannot receive mail for one endpoint; " +
		"a certificate naming " + e.Address + " is needed (RFC 8550 §3)"
}

// certODS returns the ODS code of an organisation certificate: the subject
// serialNumber, else an OU "ODS:<code>" (as certs.ODSCode reads it).
func certODS(c *x509.Certificate) (string, bool) {
	if s := strings.ToUpper(c.Subject.SerialNumber); isCertODS(s) {
		return s, true
	}
	for _, ou := range c.Subject.OrganizationalUnit {
		if code, ok := strings.CutPrefix(ou, "ODS:"); ok && isCertODS(strings.ToUpper(code)) {
			return strings.ToUpper(code), true
		}
	}
	return "", false
}

// isCertODS is certs.IsODSCode: 3 to 8 upper-case letters and digits.
func isCertODS(s string) bool {
	if len(s) < 3 || len(s) > 8 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// certName is how a certificate is named in findings: its first address,
// its ODS code, or its subject.
func certName(c *x509.Certificate) string {
	if len(c.EmailAddresses) > 0 {
		return strings.ToLower(c.EmailAddresses[0])
	}
	if ods, ok := certODS(c); ok {
		return "ODS " + ods
	}
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return c.Subject.String()
}

// certVerdict is what the directory makes of one stored certificate.
type certVerdict struct {
	cert  *x509.Certificate // nil if it does not parse
	info  CertInfo
	names bool  // a leaf that names the endpoint
	err   error // why a naming leaf may not be used; nil: usable
}

// usable reports whether the relay would encrypt to this certificate.
func (v certVerdict) usable() bool { return v.names && v.err == nil }

// judgeCerts judges e's certificates at now as the relay will: only leaf
// certificates that name e count, each checked by Config.CertCheck (or,
// without one, by its dates alone) with the others as intermediates.
// withInfo fills each verdict's CertInfo; the RCPT decision (certRefusal)
// needs only the verdicts, and the subject's words cost a quarter of it.
func (d *Directory) judgeCerts(e Endpoint, now time.Time, withInfo bool) []certVerdict {
	var parsed []*x509.Certificate
	out := make([]certVerdict, 0, len(e.Certificates))
	for _, der := range e.Certificates {
		c, err := d.parsed.parse(der)
		if err != nil {
			out = append(out, certVerdict{info: CertInfo{Problem: "cannot be parsed: " + err.Error()}})
			continue
		}
		parsed = append(parsed, c)
		out = append(out, certVerdict{cert: c})
	}
	for i, v := range out {
		c := v.cert
		if c == nil {
			continue
		}
		if withInfo {
			v.info = CertInfo{Subject: c.Subject.String(), Emails: c.EmailAddresses, NotAfter: c.NotAfter,
				DaysLeft: daysLeft(now, c.NotAfter), CA: c.IsCA}
		}
		switch {
		case c.IsCA:
			// An issuing CA stored as a chain: an intermediate, not a
			// certificate mail is encrypted to.
		case isOrgCert(c, e):
			if withInfo {
				v.info.Problem = orgCertProblem(e)
			}
		case !NamesEndpoint(c, e):
			if withInfo {
				v.info.Problem = "is for " + certName(c) + ", not this endpoint (RFC 8550 §3)"
			}
		default:
			v.names = true
			if d.cfg.CertCheck != nil {
				v.err = d.cfg.CertCheck(c, parsed, now)
			} else {
				v.err = datesOnly(c, now)
			}
			if withInfo && v.err != nil {
				v.info.Problem = v.err.Error()
			}
		}
		out[i] = v
	}
	return out
}

// datesOnly is the check without Config.CertCheck: validity dates only.
func datesOnly(c *x509.Certificate, now time.Time) error {
	switch {
	case now.After(c.NotAfter):
		return errors.New("expired on " + day(c.NotAfter))
	case now.Before(c.NotBefore):
		return errors.New("not valid until " + day(c.NotBefore))
	}
	return nil
}

// certRefusal is the certificate part of the recipient decision, for an
// endpoint that may otherwise receive clinical mail: with
// Config.RequireSMIME, a remote endpoint that is not a TLS-only exception
// must have a certificate the relay will encrypt to (judgeCerts: it names
// the endpoint and Config.CertCheck accepts it), or mail to it could only
// be held, never sent in clear — so RCPT refuses it at once. Hosted
// endpoints need none: their mail is delivered to a mailbox here. nv is
// filled in and returned; nil if mail may be sent. The caller holds d.mu.
func (d *Directory) certRefusal(e Endpoint, nv *NotVerifiedError) error {
	if !d.cfg.RequireSMIME || e.Hosted() || e.TLSOnly {
		return nil
	}
	var held *certVerdict // the naming leaf that lasts longest
	verdicts := d.judgeCerts(e, d.cfg.Now(), false)
	for i, v := range verdicts {
		switch {
		case v.usable():
			return nil
		case v.names && (held == nil || v.cert.NotAfter.After(held.cert.NotAfter)):
			held = &verdicts[i]
		}
	}
	nv.Status, nv.NoCertificate = StatusVerified, true
	switch {
	case held != nil:
		nv.Reason = "no valid S/MIME certificate (" + held.err.Error() + "); mail is never sent in clear"
	case len(e.Certificates) > 0:
		nv.Reason = "no valid S/MIME certificate: none names " + e.Address + " (RFC 8550 §3); mail is never sent in clear"
	default:
		nv.Reason = "no S/MIME certificate in the directory; mail is never sent in clear"
	}
	return nv
}

// vetNewCertificates refuses, field by field, a certificate an
// administrator adds (AddEndpoint, SetCertificates, UpdateEndpoint) that
// the relay could never use: expired, not yet valid, without the
// emailProtection extended key usage (RFC 8550 §4.4.4), or — for one that
// names the endpoint — refused by Config.CertCheck (it does not chain to
// an S/MIME trust anchor, is revoked, too weak). Certificates the
// endpoint already had are not judged again: one that has since expired
// is CheckExpiry's business, and must not block a change of next hop. CA
// certificates (a stored chain) are judged by their dates only. Vetting
// needs Config.CertCheck (serve wires it); without one nothing is vetted.
func (d *Directory) vetNewCertificates(f fieldErrors, e Endpoint, old [][]byte) {
	if d.cfg.CertCheck == nil {
		return
	}
	now := d.cfg.Now()
	var parsed []*x509.Certificate
	for _, der := range e.Certificates {
		if c, err := x509.ParseCertificate(der); err == nil {
			parsed = append(parsed, c)
		}
	}
	for i, der := range e.Certificates {
		if slices.ContainsFunc(old, func(o []byte) bool { return string(o) == string(der) }) {
			continue
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			continue // checkEndpoint names it
		}
		field := fmt.Sprintf("certificates[%d]", i)
		name := certName(c)
		switch {
		case now.After(c.NotAfter):
			f.add(field, "certificate for %s expired on %s; a current one is needed", name, day(c.NotAfter))
		case now.Before(c.NotBefore):
			f.add(field, "certificate for %s is not valid until %s; add it when it is", name, day(c.NotBefore))
		case c.IsCA:
		case !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageEmailProtection) && !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny):
			f.add(field, "certificate for %s lacks the emailProtection extended key usage, so it is not for S/MIME (RFC 8550 §4.4.4)", name)
		case NamesEndpoint(c, e):
			if err := d.cfg.CertCheck(c, parsed, now); err != nil {
				f.add(field, "%v", err)
			}
		case !isOrgCert(c, e):
			f.add(field, "is for %s, not this endpoint (RFC 8550 §3)", name)
		}
	}
}

// maxParsedCerts bounds certCache; when full it starts again (a national
// directory holds some 50,000 certificates).
const maxParsedCerts = 200_000

// certCache keeps parsed certificates by their DER, so the recipient
// decision (every RCPT) does not parse an endpoint's certificates again.
// Parsed certificates are not modified by their users. Safe for
// concurrent use; the zero value is ready.
type certCache struct {
	mu sync.RWMutex
	m  map[string]*x509.Certificate
}

func (c *certCache) parse(der []byte) (*x509.Certificate, error) {
	c.mu.RLock()
	cert, ok := c.m[string(der)]
	c.mu.RUnlock()
	if ok {
		return cert, nil
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxParsedCerts {
		c.m = make(map[string]*x509.Certificate)
	}
	c.m[string(der)] = cert
	c.mu.Unlock()
	return cert, nil
}
