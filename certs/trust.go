package certs

import (
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Trust is what S/MIME validation trusts: the anchors, which of them may
// vouch for an organisation's identity, and the revocation lists. It is
// read-only once made; a reload builds a new one. The S/MIME anchors are
// not the TLS roots.
type Trust struct {
	// Roots are the S/MIME trust anchors: CAs that may vouch for a mailbox
	// or endpoint certificate (its rfc822Name addresses). Required.
	Roots *x509.CertPool
	// OrgCAs are the anchors (normally also in Roots) that may vouch for
	// an organisation: only a certificate chaining to one of them is taken
	// as speaking for the organisation whose ODS code its subject carries
	// (Organisation). Any CA can put "ODS:A81001" in a subject; only an
	// NHS organisation CA's word on it counts. nil: no certificate speaks
	// for an organisation by its ODS code.
	OrgCAs *x509.CertPool
	// CRLs are checked for every certificate of a chain (see CRLSet for
	// the policy). nil: revocation is not checked.
	CRLs *CRLSet
	// ScopedOrgCAs are organisation CAs trusted for some organisations
	// only: a federation peer's CA speaks for the organisations whose
	// endpoints that peer publishes, never for others (directory/peers).
	ScopedOrgCAs []ScopedOrgCA

	// verified caches chain building (see chainCache); the zero value is
	// ready. A Trust is used by pointer and never copied.
	verified chainCache
}

// ValidateSMIME checks that cert may be used for purpose at now: within its
// validity, a strong enough RSA or ECDSA key (CheckSMIMEKey), the
// emailProtection EKU (RFC 8550 §4.4.4, see hasEmailProtection), the key
// usage for purpose (§4.4.2), not a CA certificate (a CA only issues), a
// chain through intermediates to one of t.Roots, and no certificate of that
// chain revoked by t.CRLs. Every
// failure is a *CertificateError: "certificate for results@a81001.nhs.test
// was revoked on 2026-05-01".
func (t *Trust) ValidateSMIME(cert *x509.Certificate, intermediates []*x509.Certificate, now time.Time, purpose Purpose) error {
	_, err := t.validate(cert, intermediates, t.roots(), now, purpose)
	return err
}

// Organisation returns the ODS code of the organisation cert speaks for:
// the code its subject claims (ODSCode), honoured only if cert is valid
// for signing at now (as ValidateSMIME checks, revocation included) along
// a chain to an anchor in t.OrgCAs. Otherwise ok is false, and the
// certificate speaks for no organisation (its addresses still name it).
func (t *Trust) Organisation(cert *x509.Certificate, intermediates []*x509.Certificate, now time.Time) (ods string, ok bool) {
	code, claimed := ODSCode(cert)
	if !claimed || t == nil {
		return "", false
	}
	if t.OrgCAs != nil {
		if _, err := t.validate(cert, intermediates, t.OrgCAs, now, Sign); err == nil {
			return code, true
		}
	}
	for _, s := range t.ScopedOrgCAs {
		if s.Pool == nil || s.Allows == nil || !s.Allows(strings.ToUpper(code)) {
			continue
		}
		if _, err := t.validate(cert, intermediates, s.Pool, now, Sign); err == nil {
			return code, true
		}
	}
	return "", false
}

// ScopedOrgCA is an organisation CA whose word on an ODS code counts only
// for the codes Allows accepts (upper case), asked at each check so that
// the scope follows the directory.
type ScopedOrgCA struct {
	Name   string // for logs: "federation peer relay-b"
	Pool   *x509.CertPool
	Allows func(ods string) bool
}

func (t *Trust) roots() *x509.CertPool {
	if t == nil {
		return nil
	}
	return t.Roots
}

func (t *Trust) crls() *CRLSet {
	if t == nil {
		return nil
	}
	return t.CRLs
}

func (t *Trust) validate(cert *x509.Certificate, intermediates []*x509.Certificate, roots *x509.CertPool, now time.Time, purpose Purpose) ([][]*x509.Certificate, error) {
	name := Name(cert)
	fail := func(err error, format string, args ...any) error {
		return &CertificateError{Subject: name, Reason: fmt.Sprintf(format, args...), Err: err}
	}
	// RFC 5280 §4.2.1.9: a CA certificate issues certificates; it is not
	// a person's or a mailbox's, whatever names and usages it carries, so
	// it neither signs mail nor receives it (it may only be an
	// intermediate of a chain).
	if cert.IsCA {
		return nil, fail(ErrWrongUsage, "is a CA certificate, not a person's or mailbox's")
	}
	if now.After(cert.NotAfter) {
		return nil, fail(ErrExpired, "expired on %s", cert.NotAfter.UTC().Format(day))
	}
	if now.Before(cert.NotBefore) {
		return nil, fail(ErrNotYetValid, "is not yet valid until %s", cert.NotBefore.UTC().Format(time.RFC3339))
	}
	if err := CheckSMIMEKey(cert.PublicKey); err != nil {
		return nil, fail(ErrWeakKey, "is refused, %s", strings.TrimPrefix(err.Error(), "certs: "))
	}
	if !hasEmailProtection(cert) {
		return nil, fail(ErrWrongUsage, "lacks the emailProtection usage")
	}
	switch purpose {
	case Encrypt:
		if _, ok := cert.PublicKey.(*rsa.PublicKey); !ok {
			return nil, fail(ErrWrongUsage, "has a %s key, which cannot receive an RSA-encrypted message key", keyType(cert))
		}
		if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
			return nil, fail(ErrWrongUsage, "lacks the keyEncipherment usage needed to receive encrypted mail")
		}
	case Sign:
		if cert.KeyUsage != 0 && cert.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
			return nil, fail(ErrWrongUsage, "lacks the digitalSignature usage needed to sign mail")
		}
	default:
		return nil, fmt.Errorf("certs: validate %s: unknown purpose %v", name, purpose)
	}
	if roots == nil {
		return nil, fail(ErrUntrusted, "cannot be checked: no S/MIME trust anchors are configured")
	}
	key := newChainKey(cert, intermediates, roots)
	chains, cached := t.verified.get(key, now)
	var err error
	if !cached {
		inter := x509.NewCertPool()
		for _, c := range intermediates {
			inter.AddCert(c)
		}
		chains, err = cert.Verify(x509.VerifyOptions{
			Roots: roots, Intermediates: inter, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		})
		if err == nil {
			t.verified.put(key, chains)
		}
	}
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case err == nil:
	case errors.As(err, &unknown):
		return nil, fail(ErrUntrusted, "is not issued by a trusted NHS CA (issuer %q)", cert.Issuer.String())
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return nil, fail(ErrExpired, "has an issuing CA certificate (%s) that is expired or not yet valid", invalid.Cert.Subject.CommonName)
	case errors.As(err, &invalid) && invalid.Reason == x509.IncompatibleUsage:
		return nil, fail(ErrWrongUsage, "chains through a CA not allowed to issue emailProtection certificates")
	default:
		return nil, fail(ErrUntrusted, "does not chain to a trusted NHS CA: %v", err)
	}
	// Any chain free of revoked certificates will do; otherwise say why
	// the first one fails.
	var first error
	for _, chain := range chains {
		err := t.crls().checkChain(chain, now, name)
		if err == nil {
			return chains, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}
