package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"nhsrelay/certs"
	"nhsrelay/certs/certstest"
	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

// writeCertPEM writes blocks to a file in t.TempDir and returns its path.
func writeCertPEM(t *testing.T, blocks ...*pem.Block) string {
	t.Helper()
	var data []byte
	for _, b := range blocks {
		data = append(data, pem.EncodeToMemory(b)...)
	}
	f := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func certBlock(c *x509.Certificate) *pem.Block { return &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw} }

// The CLI attaches S/MIME certificates (add -cert, set-cert), and
// directory check judges them as the relay will (serve wires
// directoryCertCheck: certs.Trust.ValidateSMIME with the S/MIME trust in
// force, CRLs included).
func TestDirectoryCLICertificates(t *testing.T) {
	t.Parallel()
	ca := certstest.NewCA(t)
	var trust atomic.Pointer[certs.Trust]
	trust.Store(&certs.Trust{Roots: ca.Pool, OrgCAs: ca.Pool})
	cfg, d, _ := dirServerWith(t, func(c *directory.Config) { c.CertCheck, c.RequireSMIME = directoryCertCheck(trust.Load), true },
		directorytest.Verified("gp@a81001.nhs.example", directory.NextHop{Kind: directory.HopMX}))

	// add -cert: a PEM file holding the leaf and its CA.
	leaf, _ := ca.SMIMECertificate(t, "referrals@a81001.nhs.example")
	out := mustRunDir(t, cfg, "add", "-ods", "A81001", "-cert", writeCertPEM(t, certBlock(leaf), certBlock(ca.Cert)),
		"referrals@a81001.nhs.example")
	wantContains(t, "add -cert", out, "pending verification", "certificate referrals@a81001.nhs.example, until", "issuing CA")
	if eps := d.Endpoints(t.Context(), directory.Filter{Address: "referrals@a81001.nhs.example"}); len(eps) != 1 || len(eps[0].Certificates) != 2 {
		t.Fatalf("after add -cert: %+v", eps)
	}

	// No certificate yet: check says no.
	if out, err := runDir(t, cfg, "", "check", "gp@a81001.nhs.example"); !errors.Is(err, errCannotSend) {
		t.Fatalf("check without a certificate: %v\n%s", err, out)
	}
	// An organisation certificate (ODS code, no address) from a trusted CA
	// signs for the organisation, but the relay never encrypts an
	// endpoint's mail to it: no, and why.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	org := ca.Issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "Test Practice A81001", SerialNumber: "A81001"},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}, key.Public())
	out = mustRunDir(t, cfg, "set-cert", "gp@a81001.nhs.example", writeCertPEM(t, certBlock(org)))
	wantContains(t, "set-cert", out, "1 certificate(s) stored", "certificate ODS A81001, until")
	out, err = runDir(t, cfg, "", "check", "gp@a81001.nhs.example")
	if !errors.Is(err, errCannotSend) {
		t.Errorf("check with an organisation certificate only: err = %v, want errCannotSend", err)
	}
	wantContains(t, "check with an organisation certificate", out, "NO:", "names only organisation A81001 (ODS code)", "mail is never sent in clear")

	// The endpoint's own certificate: yes; revoked by a CRL the trust
	// now holds (as after SIGHUP): no, with the date.
	own, _ := ca.SMIMECertificate(t, "gp@a81001.nhs.example")
	mustRunDir(t, cfg, "set-cert", "gp@a81001.nhs.example", writeCertPEM(t, certBlock(own)))
	out = mustRunDir(t, cfg, "check", "gp@a81001.nhs.example")
	wantContains(t, "check with the endpoint's certificate", out, "gp@a81001.nhs.example: OK", "valid until")
	revokedAt := time.Now().Add(-time.Hour)
	rl, err := x509.ParseRevocationList(ca.CRL(t, revokedAt, time.Now().Add(24*time.Hour), own))
	if err != nil {
		t.Fatal(err)
	}
	trust.Store(&certs.Trust{Roots: ca.Pool, OrgCAs: ca.Pool, CRLs: certs.NewCRLSet(rl)})
	out, err = runDir(t, cfg, "", "check", "gp@a81001.nhs.example")
	if !errors.Is(err, errCannotSend) {
		t.Errorf("check with a revoked certificate: err = %v, want errCannotSend", err)
	}
	wantContains(t, "check revoked", out, "NO:", "certificate for gp@a81001.nhs.example was revoked on "+revokedAt.UTC().Format(time.DateOnly))
	trust.Store(&certs.Trust{Roots: ca.Pool, OrgCAs: ca.Pool})

	// add and set-cert refuse a certificate the relay could never use,
	// saying which problem it has; nothing is written.
	rogue := certstest.NewCA(t)
	bad, _ := rogue.SMIMECertificate(t, "gp@a81001.nhs.example")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(notBefore, notAfter time.Time, eku []x509.ExtKeyUsage) *x509.Certificate {
		return ca.Issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "gp@a81001.nhs.example"},
			EmailAddresses: []string{"gp@a81001.nhs.example"}, NotBefore: notBefore, NotAfter: notAfter,
			KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: eku}, &rsaKey.PublicKey)
	}
	smimeEKU := []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}
	expired := mk(time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour), smimeEKU)
	early := mk(time.Now().Add(24*time.Hour), time.Now().Add(48*time.Hour), smimeEKU)
	tlsOnlyEKU := mk(time.Time{}, time.Time{}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth})
	for name, tc := range map[string]struct {
		cert *x509.Certificate
		want string
	}{
		"untrusted": {bad, "is not issued by a trusted NHS CA"},
		"expired":   {expired, "expired on " + expired.NotAfter.UTC().Format(time.DateOnly)},
		"not yet":   {early, "is not valid until " + early.NotBefore.UTC().Format(time.DateOnly)},
		"no S/MIME": {tlsOnlyEKU, "lacks the emailProtection extended key usage"},
	} {
		f := writeCertPEM(t, certBlock(tc.cert))
		if _, err := runDir(t, cfg, "", "set-cert", "gp@a81001.nhs.example", f); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("set-cert %s: err = %v, want %q", name, err, tc.want)
		}
		if _, err := runDir(t, cfg, "", "add", "-ods", "A81001", "-cert", f, "new@a81001.nhs.example"); err == nil ||
			!strings.Contains(err.Error(), "certificates[0]") {
			t.Errorf("add -cert %s: err = %v, want certificates[0] refused", name, err)
		}
	}
	if e, _ := d.Lookup(t.Context(), "gp@a81001.nhs.example"); len(e.Certificates) != 1 || !bytes.Equal(e.Certificates[0], own.Raw) {
		t.Errorf("a refused set-cert changed the certificates")
	}
	if _, err := d.Lookup(t.Context(), "new@a81001.nhs.example"); err == nil {
		t.Errorf("a refused add wrote the endpoint")
	}

	out = mustRunDir(t, cfg, "set-cert", "-none", "gp@a81001.nhs.example")
	wantContains(t, "set-cert -none", out, "0 certificate(s) stored")

	keyFile := writeCertPEM(t, certBlock(org), &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	junk := filepath.Join(t.TempDir(), "junk.pem")
	os.WriteFile(junk, []byte("not a certificate"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"set-cert", "gp@a81001.nhs.example", keyFile}, "holds a private key"},
		{[]string{"set-cert", "gp@a81001.nhs.example", junk}, "neither PEM CERTIFICATE blocks nor a DER certificate"},
		{[]string{"set-cert", "gp@a81001.nhs.example"}, "give certificate FILEs"},
		{[]string{"set-cert", "-none", "gp@a81001.nhs.example", junk}, "not both"},
		{[]string{"add", "-ods", "A81001", "-cert", keyFile, "x@a81001.nhs.example"}, "holds a private key"},
	} {
		if _, err := runDir(t, cfg, "", tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("directory %q: err = %v, want %q", tc.args, err, tc.want)
		}
	}
	if e, _ := d.Lookup(t.Context(), "gp@a81001.nhs.example"); len(e.Certificates) != 0 {
		t.Errorf("a refused set-cert wrote %d certificates", len(e.Certificates))
	}
}

// The TLS-only exception needs its evidence on the command line, and show
// prints it.
func TestDirectoryCLITLSOnly(t *testing.T) {
	t.Parallel()
	cfg, d, _ := dirServer(t, directorytest.Pending("gp@a81001.nhs.example"))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"add", "-ods", "A81001", "-tls-only", "lab@a81001.nhs.example"}, "-tls-only needs -tls-only-evidence"},
		{[]string{"add", "-ods", "A81001", "-tls-only-evidence", "x", "lab@a81001.nhs.example"}, "only with -tls-only"},
		{[]string{"add", "-ods", "A81001", "-hop", "hosted", "-tls-only", "-tls-only-evidence", "x", "lab@a81001.nhs.example"}, "tls_only"},
	} {
		if _, err := runDir(t, cfg, "", tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("directory %q: err = %v, want %q", tc.args, err, tc.want)
		}
	}
	mustRunDir(t, cfg, "add", "-ods", "A81001", "-tls-only", "-tls-only-evidence", "legacy lab system, CAB 1234", "lab@a81001.nhs.example")
	e, err := d.Lookup(t.Context(), "lab@a81001.nhs.example")
	if err != nil || !e.TLSOnly || e.TLSOnlyEvidence != "legacy lab system, CAB 1234" {
		t.Fatalf("after add -tls-only: %+v, %v", e, err)
	}
	wantContains(t, "show", mustRunDir(t, cfg, "show", "lab@a81001.nhs.example"),
		"none: administrator exception, verified TLS only (legacy lab system, CAB 1234)")
}
