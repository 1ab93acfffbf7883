package certs

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"
)

// Revocation sentinels, wrapped by *CertificateError.
var (
	// ErrRevoked: the certificate, or a CA certificate in its chain, is
	// listed on its issuer's CRL.
	ErrRevoked = errors.New("certs: certificate revoked")
	// ErrRevocationUnknown: a CRL for the issuer is loaded but cannot be
	// used (past its nextUpdate, or not signed by the issuer), so the
	// certificate is refused rather than assumed good.
	ErrRevocationUnknown = errors.New("certs: revocation status unknown")
)

// CRLSet holds certificate revocation lists (RFC 5280 §5). It is read-only
// once made and safe for concurrent use; to take in new lists, load a new
// set and swap the Trust that holds it.
//
// Policy, applied by Trust.ValidateSMIME to every certificate of a chain
// below its anchor:
//   - A CRL is matched to its CA by key, never by name alone: it claims a
//     CA when its authority key identifier equals the CA certificate's
//     subject key identifier (RFC 5280 §5.2.1, §4.2.1.2), or, when either
//     lacks one, when its issuer name equals the CA's subject. Two CAs may
//     share a name (two development CAs did): the other CA's list, with
//     another key identifier, is not this CA's and is ignored.
//   - A CRL is believed only if its signature verifies with the public key
//     of the CA certificate that issued the certificate being checked, in
//     the chain being validated (RFC 5280 §6.3.3 (f)).
//   - If the newest such CRL lists the certificate's serial with a
//     revocation date at or before now, the certificate is refused
//     (ErrRevoked): "certificate for X was revoked on 2026-05-01".
//   - Fail closed: if CRLs claiming the issuer are loaded but none verifies,
//     or the newest is past its nextUpdate, the certificate is refused
//     with ErrRevocationUnknown and the date, so an operator knows to
//     fetch a current list. A stale CRL is refused, never trusted.
//   - A CA for which no CRL is loaded is not checked: load a CRL for every
//     CA that publishes one.
//
// Not supported: delta CRLs, indirect CRLs and issuing distribution
// points (a partitioned CRL is read as if it covered every certificate),
// and OCSP.
type CRLSet struct {
	lists []crl
}

type crl struct {
	rl      *x509.RevocationList
	revoked map[string]time.Time // serial (big-endian bytes) → revocation time
}

// NewCRLSet makes a set from parsed lists.
func NewCRLSet(lists ...*x509.RevocationList) *CRLSet {
	s := &CRLSet{}
	for _, rl := range lists {
		c := crl{rl: rl, revoked: make(map[string]time.Time, len(rl.RevokedCertificateEntries))}
		for _, e := range rl.RevokedCertificateEntries {
			if e.SerialNumber != nil {
				c.revoked[string(e.SerialNumber.Bytes())] = e.RevocationTime
			}
		}
		s.lists = append(s.lists, c)
	}
	return s
}

// LoadCRLs reads CRLs from files, each PEM ("X509 CRL" blocks, any number)
// or a single DER list, as CAs publish them. A file holding no CRL, or a
// list that does not parse, is an error, so a wrong path cannot silently
// turn revocation checking off. Signatures and dates are checked when a
// list is used (see CRLSet), against the CA in the chain being validated.
func LoadCRLs(files ...string) (*CRLSet, error) {
	var lists []*x509.RevocationList
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("certs: read CRL: %w", err)
		}
		got, err := ParseCRLs(data)
		if err != nil {
			return nil, fmt.Errorf("certs: CRL %s: %w", f, err)
		}
		lists = append(lists, got...)
	}
	return NewCRLSet(lists...), nil
}

// ParseCRLs parses PEM "X509 CRL" blocks, or one DER CRL.
func ParseCRLs(data []byte) ([]*x509.RevocationList, error) {
	if !bytes.Contains(data, []byte("-----BEGIN")) {
		rl, err := x509.ParseRevocationList(data)
		if err != nil {
			return nil, fmt.Errorf("parse DER CRL: %w", err)
		}
		return []*x509.RevocationList{rl}, nil
	}
	out, err := pemBlocks(data, "X509 CRL", "parse CRL", x509.ParseRevocationList)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no X509 CRL block")
	}
	return out, nil
}

// Len is the number of lists in the set.
func (s *CRLSet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.lists)
}

// checkChain checks every certificate of chain (leaf first, anchor last)
// but the anchor against its issuer's CRL. name is how the leaf is named.
func (s *CRLSet) checkChain(chain []*x509.Certificate, now time.Time, name string) error {
	if s.Len() == 0 {
		return nil
	}
	for i := 0; i+1 < len(chain); i++ {
		if err := s.check(chain[i], chain[i+1], now, name, i == 0); err != nil {
			return err
		}
	}
	return nil
}

func (s *CRLSet) check(cert, issuer *x509.Certificate, now time.Time, name string, leaf bool) error {
	fail := func(err error, format string, args ...any) error {
		return &CertificateError{Subject: name, Reason: fmt.Sprintf(format, args...), Err: err}
	}
	var newest *crl
	claimed := false
	for i := range s.lists {
		c := &s.lists[i]
		if !c.claims(issuer) {
			continue
		}
		claimed = true
		if c.rl.CheckSignatureFrom(issuer) != nil {
			continue
		}
		if newest == nil || c.rl.ThisUpdate.After(newest.rl.ThisUpdate) {
			newest = c
		}
	}
	caName := issuer.Subject.CommonName
	switch {
	case !claimed:
		return nil
	case newest == nil:
		return fail(ErrRevocationUnknown, "cannot be checked for revocation: the loaded CRL for %s (key id %x) is not signed by that CA", caName, issuer.SubjectKeyId)
	case !newest.rl.NextUpdate.IsZero() && now.After(newest.rl.NextUpdate):
		return fail(ErrRevocationUnknown, "cannot be checked for revocation: the CRL of %s expired on %s; load a current one",
			caName, newest.rl.NextUpdate.UTC().Format(day))
	}
	at, ok := newest.revoked[string(cert.SerialNumber.Bytes())]
	if !ok || at.After(now) {
		return nil
	}
	if leaf {
		return fail(ErrRevoked, "was revoked on %s", at.UTC().Format(day))
	}
	return fail(ErrRevoked, "was issued by CA %s, whose certificate was revoked on %s", cert.Subject.CommonName, at.UTC().Format(day))
}

// claims reports whether the list says it was issued by ca: by key
// identifier when both carry one (RFC 5280 §5.2.1: the authority key
// identifier "MUST" be in a conforming CRL), else by name.
func (c *crl) claims(ca *x509.Certificate) bool {
	if len(c.rl.AuthorityKeyId) > 0 && len(ca.SubjectKeyId) > 0 {
		return bytes.Equal(c.rl.AuthorityKeyId, ca.SubjectKeyId)
	}
	return bytes.Equal(c.rl.RawIssuer, ca.RawSubject)
}
