package certs

import (
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"
)

// WarnDays is how close to expiry a certificate is reported as a warning.
const WarnDays = 30

// CertStatus is one line of `nhsrelay certs status`.
type CertStatus struct {
	File     string // where it was read from; empty if not from a file
	Subject  string // Name(cert)
	Role     string // "CA", "TLS", "S/MIME signing", "S/MIME signing+encryption", …
	Issuer   string
	NotAfter time.Time
	DaysLeft int    // whole days until NotAfter; negative once expired
	Warning  string // empty when fine; otherwise what to do
}

// Inspect reports on one certificate at now.
func Inspect(cert *x509.Certificate, now time.Time) CertStatus {
	s := CertStatus{
		Subject:  Name(cert),
		Role:     Role(cert),
		Issuer:   cert.Issuer.CommonName,
		NotAfter: cert.NotAfter,
		DaysLeft: int(cert.NotAfter.Sub(now).Hours() / 24),
	}
	if now.After(cert.NotAfter) {
		s.DaysLeft = -int(now.Sub(cert.NotAfter).Hours()/24) - 1
	}
	switch {
	case now.After(cert.NotAfter):
		s.Warning = "EXPIRED on " + cert.NotAfter.UTC().Format(day) + ": replace it now"
	case now.Before(cert.NotBefore):
		s.Warning = "not valid until " + cert.NotBefore.UTC().Format(time.RFC3339)
	case s.DaysLeft < WarnDays:
		s.Warning = fmt.Sprintf("expires in %d days (%s): renew it", s.DaysLeft, cert.NotAfter.UTC().Format(day))
	}
	if err := CheckKey(cert.PublicKey); err != nil {
		w := strings.TrimPrefix(err.Error(), "certs: ")
		if s.Warning != "" {
			w = s.Warning + "; " + w
		}
		s.Warning = w
	}
	return s
}

// Role names what a certificate is for, from its basic constraints, key
// usage and extended key usage.
func Role(cert *x509.Certificate) string {
	if cert.IsCA {
		return "CA"
	}
	var roles []string
	for _, u := range cert.ExtKeyUsage {
		switch u {
		case x509.ExtKeyUsageServerAuth:
			roles = append(roles, "TLS")
		case x509.ExtKeyUsageEmailProtection:
			r := "S/MIME"
			sign := cert.KeyUsage == 0 || cert.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) != 0
			enc := cert.KeyUsage == 0 || cert.KeyUsage&x509.KeyUsageKeyEncipherment != 0
			switch {
			case sign && enc:
				r += " signing+encryption"
			case sign:
				r += " signing"
			case enc:
				r += " encryption"
			}
			roles = append(roles, r)
		}
	}
	if len(roles) == 0 {
		return "other"
	}
	return strings.Join(roles, ", ")
}

// Status reads every certificate in files (PEM, several per file allowed)
// and reports on each at now. A file that cannot be read is an error naming
// it.
func Status(now time.Time, files ...string) ([]CertStatus, error) {
	var out []CertStatus
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("certs: status: %w", err)
		}
		certs, err := ParseCertificates(data)
		if err != nil {
			return nil, fmt.Errorf("certs: status %s: %w", f, err)
		}
		for _, c := range certs {
			s := Inspect(c, now)
			s.File = f
			out = append(out, s)
		}
	}
	return out, nil
}
