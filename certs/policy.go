package certs

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Minimum key sizes. NCSC Mail Check flags RSA below 2048 bits and elliptic
// curves below 256 bits; new S/MIME keys are RSA-3072.
const (
	MinRSABits      = 2048
	NewSMIMERSABits = 3072
	MinECBits       = 256
)

// Sentinels wrapped by *CertificateError so callers can tell cases apart with
// errors.Is; the text a person reads is CertificateError's own.
var (
	ErrWeakKey     = errors.New("certs: key too weak")
	ErrExpired     = errors.New("certs: certificate expired")
	ErrNotYetValid = errors.New("certs: certificate not yet valid")
	ErrUntrusted   = errors.New("certs: certificate not issued by a trusted CA")
	ErrWrongUsage  = errors.New("certs: certificate lacks a required usage")
)

// CertificateError says what is wrong with one certificate in words an
// operator or sender can act on: "certificate for results@a81001.nhs.test
// expired on 2026-10-01".
type CertificateError struct {
	Subject string // the address, ODS code or common name the certificate is for
	Reason  string // "expired on 2026-10-01", "not issued by a trusted NHS CA", …
	Err     error  // one of the sentinels above, for errors.Is
}

func (e *CertificateError) Error() string {
	return "certificate for " + e.Subject + " " + e.Reason
}

func (e *CertificateError) Unwrap() error { return e.Err }

// Purpose is what an S/MIME certificate is being used for.
type Purpose int

const (
	// Encrypt: the certificate's key receives the content-encryption key
	// (RSA key transport, so keyEncipherment).
	Encrypt Purpose = iota + 1
	// Sign: the certificate verifies a signature (digitalSignature or
	// nonRepudiation).
	Sign
)

func (p Purpose) String() string {
	switch p {
	case Encrypt:
		return "encryption"
	case Sign:
		return "signing"
	}
	return fmt.Sprintf("Purpose(%d)", int(p))
}

// CheckKey applies the key-strength policy to a public key. The error says
// why, for example "key too weak: RSA 1024 bits (minimum 2048)".
func CheckKey(pub any) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < MinRSABits {
			return fmt.Errorf("%w: RSA %d bits (minimum %d)", ErrWeakKey, n, MinRSABits)
		}
	case *ecdsa.PublicKey:
		if k.Curve == nil {
			return fmt.Errorf("%w: EC key without a curve", ErrWeakKey)
		}
		if n := k.Curve.Params().BitSize; n < MinECBits {
			return fmt.Errorf("%w: EC %d bits (minimum P-256)", ErrWeakKey, n)
		}
	case ed25519.PublicKey:
		// 128-bit security level, equivalent to P-256.
	default:
		return fmt.Errorf("%w: unsupported key type %T", ErrWeakKey, pub)
	}
	return nil
}

// odsPattern matches NHS Organisation Data Service codes: 3 characters for a
// trust (RRK), 5 for a site (RRK01), 6 for a GP practice (A81001).
var odsPattern = regexp.MustCompile(`^[A-Z0-9]{3,8}$`)

// IsODSCode reports whether s looks like an ODS code rather than an address.
func IsODSCode(s string) bool { return odsPattern.MatchString(s) }

// Addresses returns the rfc822Name SANs of cert, lower-cased (RFC 8550 §3:
// the address is in subjectAltName; an emailAddress in the subject DN is
// not used for matching).
func Addresses(cert *x509.Certificate) []string {
	out := make([]string, 0, len(cert.EmailAddresses))
	for _, a := range cert.EmailAddresses {
		out = append(out, strings.ToLower(a))
	}
	return out
}

// ODSCode returns the organisation's ODS code from an organisation
// certificate: the subject serialNumber, else an OU of the form "ODS:<code>".
func ODSCode(cert *x509.Certificate) (string, bool) {
	if s := strings.ToUpper(cert.Subject.SerialNumber); IsODSCode(s) {
		return s, true
	}
	for _, ou := range cert.Subject.OrganizationalUnit {
		if code, ok := strings.CutPrefix(ou, "ODS:"); ok && IsODSCode(strings.ToUpper(code)) {
			return strings.ToUpper(code), true
		}
	}
	return "", false
}

// Name is how a certificate is named in messages: its first address, else
// its ODS code, else its subject common name.
func Name(cert *x509.Certificate) string {
	if a := Addresses(cert); len(a) > 0 {
		return a[0]
	}
	if code, ok := ODSCode(cert); ok {
		return "ODS " + code
	}
	if cert.Subject.CommonName != "" {
		return cert.Subject.CommonName
	}
	return "serial " + cert.SerialNumber.String()
}

const day = "2006-01-02"

// ValidateSMIME checks that cert may be used for purpose at now: within its
// validity, a strong enough key, the emailProtection EKU (RFC 8550 §4.4.4),
// the key usage for purpose (§4.4.2), and a chain through intermediates to
// one of roots — the S/MIME trust anchors, which are not the TLS roots.
// Every failure is a *CertificateError. Revocation is not checked here.
func ValidateSMIME(cert *x509.Certificate, intermediates []*x509.Certificate, roots *x509.CertPool, now time.Time, purpose Purpose) error {
	name := Name(cert)
	fail := func(err error, format string, args ...any) error {
		return &CertificateError{Subject: name, Reason: fmt.Sprintf(format, args...), Err: err}
	}
	if now.After(cert.NotAfter) {
		return fail(ErrExpired, "expired on %s", cert.NotAfter.UTC().Format(day))
	}
	if now.Before(cert.NotBefore) {
		return fail(ErrNotYetValid, "is not yet valid until %s", cert.NotBefore.UTC().Format(time.RFC3339))
	}
	if err := CheckKey(cert.PublicKey); err != nil {
		return fail(ErrWeakKey, "is refused, %s", strings.TrimPrefix(err.Error(), "certs: "))
	}
	if !hasEmailProtection(cert) {
		return fail(ErrWrongUsage, "lacks the emailProtection usage")
	}
	switch purpose {
	case Encrypt:
		if _, ok := cert.PublicKey.(*rsa.PublicKey); !ok {
			return fail(ErrWrongUsage, "has a %s key, which cannot receive an RSA-encrypted message key", keyType(cert))
		}
		if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
			return fail(ErrWrongUsage, "lacks the keyEncipherment usage needed to receive encrypted mail")
		}
	case Sign:
		if cert.KeyUsage != 0 && cert.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
			return fail(ErrWrongUsage, "lacks the digitalSignature usage needed to sign mail")
		}
	default:
		return fmt.Errorf("certs: validate %s: unknown purpose %v", name, purpose)
	}
	if roots == nil {
		return fail(ErrUntrusted, "cannot be checked: no S/MIME trust anchors are configured")
	}
	inter := x509.NewCertPool()
	for _, c := range intermediates {
		inter.AddCert(c)
	}
	_, err := cert.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	})
	if err == nil {
		return nil
	}
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown):
		return fail(ErrUntrusted, "is not issued by a trusted NHS CA (issuer %q)", cert.Issuer.String())
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return fail(ErrExpired, "has an issuing CA certificate (%s) that is expired or not yet valid", invalid.Cert.Subject.CommonName)
	case errors.As(err, &invalid) && invalid.Reason == x509.IncompatibleUsage:
		return fail(ErrWrongUsage, "chains through a CA not allowed to issue emailProtection certificates")
	default:
		return fail(ErrUntrusted, "does not chain to a trusted NHS CA: %v", err)
	}
}

// hasEmailProtection: QUIRK: RFC 8550 §4.4.4 lets a certificate without any
// EKU extension be used for S/MIME; NHS endpoint certificates must name
// emailProtection, so a certificate without it is refused.
func hasEmailProtection(cert *x509.Certificate) bool {
	for _, u := range cert.ExtKeyUsage {
		if u == x509.ExtKeyUsageEmailProtection || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

func keyType(cert *x509.Certificate) string {
	switch k := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "EC " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", cert.PublicKey)
}
