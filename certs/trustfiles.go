package certs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
)

// TrustFiles names the PEM files an S/MIME Trust is read from: the
// anchors, the organisation CAs (each of which must also be an anchor) and
// the CRLs. KeyPrefix is put before the list names in every problem
// ("smime." gives "smime.trust_anchors[0]: ..."), so an operator reads the
// key of the file at fault.
type TrustFiles struct {
	Anchors, OrgCAs, CRLs []string
	KeyPrefix             string
}

// The list names problems carry (after TrustFiles.KeyPrefix).
const (
	AnchorsKey = "trust_anchors"
	OrgCAsKey  = "org_cas"
	CRLsKey    = "crls"
)

// TrustFileError is one problem with a trust file, naming its list entry.
type TrustFileError struct {
	Key     string // "smime.crls[0]", or the list ("smime.crls") when no one entry is at fault
	Problem string
}

func (e *TrustFileError) Error() string { return e.Key + ": " + e.Problem }

// Load reads the files into a Trust. Every problem is a *TrustFileError;
// with any problem the Trust is nil, so a wrong file can never trust less
// (or more) than the operator listed.
func (f TrustFiles) Load() (*Trust, []error) {
	var problems []error
	fail := func(key, format string, args ...any) {
		problems = append(problems, &TrustFileError{Key: f.KeyPrefix + key, Problem: fmt.Sprintf(format, args...)})
	}
	anchors := map[string]bool{} // DER of every anchor
	trust := &Trust{}
	for i, file := range f.Anchors {
		key := fmt.Sprintf("%s[%d]", AnchorsKey, i)
		cs, err := readCertificates(file)
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
	for i, file := range f.OrgCAs {
		key := fmt.Sprintf("%s[%d]", OrgCAsKey, i)
		cs, err := readCertificates(file)
		if err != nil {
			fail(key, "%v", err)
			continue
		}
		for _, c := range cs {
			switch {
			case !c.IsCA:
				fail(key, "%s holds %q, which is not a CA certificate; list the CA that issues organisation certificates", file, c.Subject.String())
				continue
			case !anchors[string(c.Raw)]:
				// Organisation identity is a narrower trust than an
				// anchor's, never a wider one: a certificate must first
				// chain to an anchor at all.
				fail(key, "the CA %q in %s is not among %s%s; an organisation CA must also be a trust anchor (add it there too)",
					c.Subject.String(), file, f.KeyPrefix, AnchorsKey)
				continue
			}
			if trust.OrgCAs == nil {
				trust.OrgCAs = x509.NewCertPool()
			}
			trust.OrgCAs.AddCert(c)
		}
	}
	if len(f.CRLs) > 0 {
		for i, file := range f.CRLs {
			if _, err := LoadCRLs(file); err != nil {
				fail(fmt.Sprintf("%s[%d]", CRLsKey, i), "%v", err)
			}
		}
		if len(problems) == 0 {
			set, err := LoadCRLs(f.CRLs...)
			if err != nil { // changed between the two reads
				fail(CRLsKey, "%v", err)
			} else {
				trust.CRLs = set
			}
		}
	}
	if len(problems) == 0 && trust.Roots == nil {
		fail(AnchorsKey, "must list at least one PEM file of the CAs that may vouch for NHS endpoints' S/MIME certificates")
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
	cs, err := ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(cs) == 0 {
		return nil, fmt.Errorf("%s holds no PEM CERTIFICATE", file)
	}
	return cs, nil
}

// LiveTrust is the S/MIME trust in force, shared by the relay's policy
// (which calls Load on SIGHUP) and the directory's certificate check
// (which reads Current), so both judge a certificate alike — a CRL loaded
// by SIGHUP holds a revoked endpoint in the directory's check too.
type LiveTrust struct {
	files TrustFiles // fixed at start; changing the lists needs a restart
	cur   atomic.Pointer[Trust]
}

// NewLiveTrust loads the trust from files.
func NewLiveTrust(files TrustFiles) (*LiveTrust, error) {
	lt := &LiveTrust{files: files}
	if _, err := lt.Load(); err != nil {
		return nil, err
	}
	return lt, nil
}

// Load reads the files again and puts the new trust in force; on error
// the trust in force stays, and the error joins every problem.
func (lt *LiveTrust) Load() (*Trust, error) {
	t, problems := lt.files.Load()
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	lt.cur.Store(t)
	return t, nil
}

// Current is the trust in force.
func (lt *LiveTrust) Current() *Trust { return lt.cur.Load() }
