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
		// 128-bit security level, equivalent to P-256; fine for TLS.
		// S/MIME refuses it (CheckSMIMEKey).
	default:
		return fmt.Errorf("%w: unsupported key type %T", ErrWeakKey, pub)
	}
	return nil
}

// CheckSMIMEKey is CheckKey for S/MIME certificates and signing keys: RSA
// or ECDSA only. Ed25519 is refused: this relay cannot sign with it
// (RFC 8419 EdDSA in CMS is not implemented) and mail clients do not read
// it, so accepting it would only move the failure to the recipient.
func CheckSMIMEKey(pub any) error {
	if _, ok := pub.(ed25519.PublicKey); ok {
		return fmt.Errorf("%w: Ed25519 keys are not supported for S/MIME (use RSA or ECDSA P-256)", ErrWeakKey)
	}
	return CheckKey(pub)
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

// ODSCode returns the ODS code an organisation certificate claims: the
// subject serialNumber, else an OU of the form "ODS:<code>". It is only a
// claim, fit for naming the certificate: any CA can write such a subject.
// To decide who a certificate speaks for, use Trust.Organisation, which
// honours the claim only from a CA in Trust.OrgCAs.
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

// ValidateSMIME checks cert against roots alone, as Trust.ValidateSMIME
// does with neither CRLs nor organisation CAs. Prefer a Trust: this form
// checks no revocation.
func ValidateSMIME(cert *x509.Certificate, intermediates []*x509.Certificate, roots *x509.CertPool, now time.Time, purpose Purpose) error {
	return (&Trust{Roots: roots}).ValidateSMIME(cert, intermediates, now, purpose)
}

// hasEmailProtection reports whether cert names the emailProtection EKU.
// QUIRK: RFC 8550 §4.4.4 lets a certificate without any EKU extension, or
// with anyExtendedKeyUsage, be used for S/MIME. NHS endpoint and
// organisation certificates must name emailProtection itself: a
// certificate without the extension, or with only anyExtendedKeyUsage (the
// mark of a general-purpose certificate not issued for mail), is refused.
func hasEmailProtection(cert *x509.Certificate) bool {
	for _, u := range cert.ExtKeyUsage {
		if u == x509.ExtKeyUsageEmailProtection {
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
