package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"nhsrelay/certs"
)

// smimeTrust checks smime.org_cas and smime.crls, and what the trust
// files hold once they all exist: certificates, organisation CAs among the
// anchors, CRLs that parse — loadSMIMETrust, as serve and SIGHUP load
// them, so a file that would stop the server is a config problem first.
func (v *validator) smimeTrust(c *config, m fileSMIME) {
	for i, f := range m.OrgCAs {
		c.SMIMEOrgCAs = append(c.SMIMEOrgCAs, v.file(fmt.Sprintf("smime.org_cas[%d]", i), f, false))
	}
	for i, f := range m.CRLs {
		c.SMIMECRLs = append(c.SMIMECRLs, v.file(fmt.Sprintf("smime.crls[%d]", i), f, false))
	}
	if len(m.TrustAnchors) == 0 || !v.ok(fileKeys("smime.trust_anchors", len(m.TrustAnchors))...) ||
		!v.ok(fileKeys("smime.org_cas", len(m.OrgCAs))...) || !v.ok(fileKeys("smime.crls", len(m.CRLs))...) {
		return
	}
	_, problems := loadSMIMETrust(c.SMIMETrustAnchors, c.SMIMEOrgCAs, c.SMIMECRLs)
	for _, p := range problems {
		var ke *keyError
		if errors.As(p, &ke) {
			v.addf(ke.Key, "%s", ke.Problem)
		} else {
			v.addf("smime.trust_anchors", "%v", p)
		}
	}
}

// fileKeys names the n entries of a list key: key[0] … key[n-1].
func fileKeys(key string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s[%d]", key, i)
	}
	return out
}

// loadSMIMETrust reads the [smime] trust files into a certs.Trust: the
// anchors (smime.trust_anchors), the organisation CAs (smime.org_cas),
// each of which must also be an anchor, and the CRLs (smime.crls). Every
// problem is a *keyError naming its key and file, so loadConfig reports
// it as any other config problem and serve refuses to start on it.
func loadSMIMETrust(anchorFiles, orgCAFiles, crlFiles []string) (*certs.Trust, []error) {
	var problems []error
	fail := func(key, format string, args ...any) {
		problems = append(problems, &keyError{Key: key, Problem: fmt.Sprintf(format, args...)})
	}
	anchors := map[string]bool{} // DER of every anchor
	trust := &certs.Trust{}
	for i, f := range anchorFiles {
		key := fmt.Sprintf("smime.trust_anchors[%d]", i)
		cs, err := readCertificates(f)
		if err != nil {
			fail(key, "%v", err)
			continue
		}
		if trust.Roots == nil {
			trust.Roots = x509.NewCertPool()
		}
		for _, c := range cs {
			anchors[string(c.Raw)] = true
			trust.Roots.AddCert(c)
		}
	}
	for i, f := range orgCAFiles {
		key := fmt.Sprintf("smime.org_cas[%d]", i)
		cs, err := readCertificates(f)
		if err != nil {
			fail(key, "%v", err)
			continue
		}
		for _, c := range cs {
			switch {
			case !c.IsCA:
				fail(key, "%s holds %q, which is not a CA certificate; list the CA that issues organisation certificates", f, c.Subject.String())
				continue
			case !anchors[string(c.Raw)]:
				// Organisation identity is a narrower trust than an
				// anchor's, never a wider one: a certificate must first
				// chain to an anchor at all.
				fail(key, "the CA %q in %s is not among smime.trust_anchors; an organisation CA must also be a trust anchor (add it there too)",
					c.Subject.String(), f)
				continue
			}
			if trust.OrgCAs == nil {
				trust.OrgCAs = x509.NewCertPool()
			}
			trust.OrgCAs.AddCert(c)
		}
	}
	if len(crlFiles) > 0 {
		for i, f := range crlFiles {
			if _, err := certs.LoadCRLs(f); err != nil {
				fail(fmt.Sprintf("smime.crls[%d]", i), "%v", err)
			}
		}
		if len(problems) == 0 {
			set, err := certs.LoadCRLs(crlFiles...)
			if err != nil { // changed between the two reads
				fail("smime.crls", "%v", err)
			} else {
				trust.CRLs = set
			}
		}
	}
	if len(problems) == 0 && trust.Roots == nil {
		fail("smime.trust_anchors", "must list at least one PEM file of the CAs that may vouch for NHS endpoints' S/MIME certificates")
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return trust, nil
}

// readCertificates reads the PEM certificates in file; a file without any
// is an error, so a wrong path cannot silently trust nothing.
func readCertificates(file string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	cs, err := certs.ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(cs) == 0 {
		return nil, fmt.Errorf("%s holds no PEM CERTIFICATE", file)
	}
	return cs, nil
}

// smimeTrust is the S/MIME trust in force, shared by the relay's policy
// (which calls load on SIGHUP) and the directory's certificate check
// (which reads current), so both judge a certificate alike — a CRL loaded
// by SIGHUP holds a revoked endpoint in the directory's check too.
type smimeTrust struct {
	anchors, orgCAs, crls []string // fixed at start; changing the lists needs a restart
	cur                   atomic.Pointer[certs.Trust]
	// addPeers adds the federation peers' CAs to a freshly loaded trust
	// (serve_federation.go); nil before the peers are loaded.
	addPeers func(*certs.Trust)
}

// newSMIMETrust loads the trust from cfg's [smime] files.
func newSMIMETrust(cfg *config) (*smimeTrust, error) {
	st := &smimeTrust{anchors: cfg.SMIMETrustAnchors, orgCAs: cfg.SMIMEOrgCAs, crls: cfg.SMIMECRLs}
	if _, err := st.load(); err != nil {
		return nil, err
	}
	return st, nil
}

// load reads the files again and puts the new trust in force; on error
// the trust in force stays.
func (st *smimeTrust) load() (*certs.Trust, error) {
	t, problems := loadSMIMETrust(st.anchors, st.orgCAs, st.crls)
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	if st.addPeers != nil {
		st.addPeers(t)
	}
	st.cur.Store(t)
	return t, nil
}

// current is the trust in force.
func (st *smimeTrust) current() *certs.Trust { return st.cur.Load() }
