package main

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"nhsrelay/certs"
)

// TestCertsRevokeCRL: two development CAs with one name (as two `init`s
// made before CA names were unique); revoking a certificate of the first
// and loading its CRL refuses that certificate and leaves the second CA's
// endpoint alone. openssl reads the CRL and, with -crl_check, agrees.
func TestCertsRevokeCRL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := certsMain(args, &out, time.Now); err != nil {
			t.Fatalf("certs %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}
	caA, caB := filepath.Join(dir, "caA"), filepath.Join(dir, "caB")
	run("init-ca", "--name", "nhsrelay development CA (localhost)", caA)
	run("init-ca", "--name", "nhsrelay development CA (localhost)", caB)
	run("issue", "--smime", "gp@a.nhs.test", "--ca", caA, "--out", filepath.Join(dir, "a"), "-days", "2")
	run("issue", "--smime", "gp@b.nhs.test", "--ca", caB, "--out", filepath.Join(dir, "b"))
	if out := run("revoke", "--ca", caA, "-reason", "key left on a laptop", filepath.Join(dir, "a.crt")); !strings.Contains(out, "revoked gp@a.nhs.test") {
		t.Errorf("revoke printed %q", out)
	}
	if out := run("revoke", "--ca", caA, filepath.Join(dir, "a.crt")); !strings.Contains(out, "already revoked") {
		t.Errorf("second revoke printed %q, want already revoked", out)
	}
	var out bytes.Buffer
	if err := certsMain([]string{"revoke", "--ca", caA, filepath.Join(dir, "b.crt")}, &out, time.Now); err == nil ||
		!strings.Contains(err.Error(), "not issued by this CA") {
		t.Errorf("revoke of another CA's certificate = %v, want refused", err)
	}
	crlFile := filepath.Join(dir, "a.crl")
	run("crl", "--ca", caA, "--out", crlFile)
	run("crl", "--ca", caA, "--out", crlFile) // reissue: the CRL number goes up

	set, err := certs.LoadCRLs(crlFile)
	if err != nil {
		t.Fatal(err)
	}
	roots, err := certs.LoadPool(filepath.Join(caA, certs.CACertFile), filepath.Join(caB, certs.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	trust := &certs.Trust{Roots: roots, CRLs: set}
	a, b := mustCert(t, filepath.Join(dir, "a.crt")), mustCert(t, filepath.Join(dir, "b.crt"))
	if err := trust.ValidateSMIME(a, nil, time.Now(), certs.Encrypt); !errors.Is(err, certs.ErrRevoked) {
		t.Errorf("revoked certificate of CA A = %v, want ErrRevoked", err)
	}
	if err := trust.ValidateSMIME(b, nil, time.Now(), certs.Encrypt); err != nil {
		t.Errorf("CA B's certificate with CA A's CRL loaded = %v, want valid", err)
	}
	if a.NotAfter.Sub(a.NotBefore) > 2*24*time.Hour+10*time.Minute {
		t.Errorf("-days 2 gave %v of validity", a.NotAfter.Sub(a.NotBefore))
	}

	text := opensslOut(t, "crl", "-in", crlFile, "-noout", "-text")
	if !regexp.MustCompile(`CRL Number:\s*2\s`).MatchString(text) {
		t.Errorf("openssl: CRL number 2 (the second list) not found:\n%s", text)
	}
	if !strings.Contains(strings.ToUpper(text), strings.ToUpper(a.SerialNumber.Text(16))) {
		t.Errorf("openssl: CRL does not list serial %x:\n%s", a.SerialNumber, text)
	}
	verify := exec.Command("openssl", "verify", "-crl_check", "-CAfile", filepath.Join(caA, certs.CACertFile),
		"-CRLfile", crlFile, "-purpose", "smimeencrypt", filepath.Join(dir, "a.crt"))
	if got, err := verify.CombinedOutput(); err == nil || !strings.Contains(string(got), "revoked") {
		t.Errorf("openssl verify -crl_check of the revoked certificate = %v: %s", err, got)
	}
}

// TestCertsIssueNotBefore: -not-before in the future gives a certificate
// not yet valid, and status says so; a bad date is refused by name.
func TestCertsIssueNotBefore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	var out bytes.Buffer
	if err := certsMain([]string{"init-ca", caDir}, &out, time.Now); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	if err := certsMain([]string{"issue", "--smime", "later@a.nhs.test", "--ca", caDir, "--out", filepath.Join(dir, "later"),
		"-not-before", start, "-days", "30"}, &out, time.Now); err != nil {
		t.Fatal(err)
	}
	c := mustCert(t, filepath.Join(dir, "later.crt"))
	if got := c.NotBefore.UTC().Format(time.RFC3339); got != start || c.NotAfter.Sub(c.NotBefore) != 30*24*time.Hour {
		t.Errorf("validity %v – %v, want from %s for 30 days", c.NotBefore, c.NotAfter, start)
	}
	if s := certs.Inspect(c, time.Now()); !strings.Contains(s.Warning, "not valid until") {
		t.Errorf("status warning = %q, want not yet valid", s.Warning)
	}
	err := certsMain([]string{"issue", "--smime", "x@a.nhs.test", "--ca", caDir, "--out", filepath.Join(dir, "x"), "-not-before", "tomorrow"}, &out, time.Now)
	if err == nil || !strings.Contains(err.Error(), "-not-before") {
		t.Errorf("bad -not-before = %v", err)
	}
}

func mustCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := certs.ParseCertificates(data)
	if err != nil || len(chain) == 0 {
		t.Fatalf("%s: %v", path, err)
	}
	return chain[0]
}

func opensslOut(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("openssl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
