package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"nhsrelay/certs"
	"nhsrelay/internal/durable"
)

// setIssueValidity applies `certs issue -days N -not-before TIME`.
func setIssueValidity(ca *certs.CA, days int, notBefore string) error {
	if days < 0 {
		return fmt.Errorf("-days %d: want a positive number of days", days)
	}
	ca.Validity = time.Duration(days) * 24 * time.Hour
	if notBefore == "" {
		return nil
	}
	for _, layout := range []string{time.RFC3339, time.DateOnly} {
		if t, err := time.Parse(layout, notBefore); err == nil {
			ca.NotBefore = t
			return nil
		}
	}
	return fmt.Errorf("-not-before %q: want RFC 3339 (2026-12-08T09:00:00Z) or a date (2026-12-08)", notBefore)
}

func certsRevoke(args []string, stdout io.Writer, now time.Time) error {
	fs := newCertsFlags("revoke")
	caDir := fs.String("ca", "", "CA directory")
	reason := fs.String("reason", "", "why, for the record")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("revoke: %w\n\n%s", err, certsUsage)
	}
	if *caDir == "" || fs.NArg() == 0 {
		return fmt.Errorf("revoke: want --ca DIR and at least one CERTFILE\n\n%s", certsUsage)
	}
	ca, err := certs.LoadCA(*caDir)
	if err != nil {
		return err
	}
	for _, f := range fs.Args() {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("revoke: %w", err)
		}
		chain, err := certs.ParseCertificates(data)
		if err != nil || len(chain) == 0 {
			return fmt.Errorf("revoke: %s holds no certificate (%v)", f, err)
		}
		r, err := ca.Revoke(chain[0], *reason, now)
		if errors.Is(err, certs.ErrAlreadyRevoked) {
			fmt.Fprintf(stdout, "%s: already revoked on %s\n", f, r.At.Format(time.DateOnly))
			continue
		}
		if err != nil {
			return fmt.Errorf("revoke %s: %w", f, err)
		}
		fmt.Fprintf(stdout, "revoked %s (serial %x) on %s\n", chain[0].Subject.CommonName, r.Serial, r.At.Format(time.RFC3339))
	}
	fmt.Fprintf(stdout, "publish it: nhsrelay certs crl --ca %s --out FILE\n", *caDir)
	return nil
}

func certsCRL(args []string, stdout io.Writer, now time.Time) error {
	fs := newCertsFlags("crl")
	caDir := fs.String("ca", "", "CA directory")
	out := fs.String("out", "", "CRL file to write")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("crl: %w\n\n%s", err, certsUsage)
	}
	if *caDir == "" || *out == "" || fs.NArg() > 0 {
		return fmt.Errorf("crl: want --ca DIR and --out FILE\n\n%s", certsUsage)
	}
	ca, err := certs.LoadCA(*caDir)
	if err != nil {
		return err
	}
	pemCRL, err := ca.CRL(now)
	if err != nil {
		return err
	}
	// Atomic and durable: serve's CRL watcher sees the old list or the
	// new one, never half of one. Readable by all: a CRL is public.
	if err := durable.WriteFile(*out, pemCRL); err != nil {
		return fmt.Errorf("crl: %w", err)
	}
	if err := os.Chmod(*out, 0o644); err != nil {
		return fmt.Errorf("crl: %w", err)
	}
	list, _ := ca.Revocations()
	fmt.Fprintf(stdout, "wrote %s: CRL of %q, %d revoked, current until %s\n", *out, ca.Cert.Subject.CommonName,
		len(list), now.Add(certs.CRLValidity).UTC().Format(time.DateOnly))
	return nil
}
