package certs_test

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nhsrelay/certs"
	"nhsrelay/certs/certstest"
)

// TestLiveTrustLoad: the trust serve builds from [smime] believes ODS
// codes only from org_cas, checks the CRLs, and on SIGHUP (load) takes in
// a new CRL at once; a CRL file that no longer parses keeps the trust in
// force and names its key.
func TestLiveTrustLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, other := certstest.NewCA(t), certstest.NewCA(t)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pemCert := func(ca *certstest.CA) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
	}
	anchors := []string{write("ca.pem", pemCert(ca)), write("other.pem", pemCert(other))}
	crl := write("ca.crl", ca.CRL(t, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)))
	st, err := certs.NewLiveTrust(certs.TrustFiles{Anchors: anchors, OrgCAs: anchors[:1], CRLs: []string{crl}, KeyPrefix: "smime."})
	if err != nil {
		t.Fatalf("NewLiveTrust: %v", err)
	}
	leaf, _ := ca.SMIMECertificate(t, "gp@a81001.nhs.example")
	if err := st.Current().ValidateSMIME(leaf, nil, time.Now(), certs.Encrypt); err != nil {
		t.Fatalf("ValidateSMIME before revocation: %v", err)
	}

	write("ca.crl", ca.CRL(t, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour), leaf))
	if _, err := st.Load(); err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := st.Current().ValidateSMIME(leaf, nil, time.Now(), certs.Encrypt); !errors.Is(err, certs.ErrRevoked) {
		t.Errorf("ValidateSMIME after the new CRL = %v, want ErrRevoked", err)
	}

	before := st.Current()
	write("ca.crl", []byte("half a download"))
	if _, err := st.Load(); err == nil || !strings.Contains(err.Error(), "smime.crls[0]:") {
		t.Errorf("load of a broken CRL = %v, want an error naming smime.crls[0]", err)
	}
	if st.Current() != before {
		t.Errorf("a failed load replaced the trust in force")
	}

	// An org CA that is not an anchor is refused, naming the key.
	_, err = certs.NewLiveTrust(certs.TrustFiles{Anchors: anchors[:1], OrgCAs: anchors[1:], KeyPrefix: "smime."})
	if err == nil || !strings.Contains(err.Error(), "smime.org_cas[0]: the CA") || !strings.Contains(err.Error(), "must also be a trust anchor") {
		t.Errorf("NewLiveTrust(org CA not an anchor) = %v", err)
	}
}

// RootPool adds the CA files to the system roots; a file without a
// certificate is refused by name.
func TestRootPool(t *testing.T) {
	t.Parallel()
	if p, err := certs.RootPool(nil); p != nil || err != nil {
		t.Fatalf("RootPool(nil) = %v, %v; want nil, nil (system roots)", p, err)
	}
	dir := t.TempDir()
	ca := certstest.NewCA(t)
	good := filepath.Join(dir, "ca.pem")
	certstest.WritePEM(t, good, ca.Cert)
	pool, err := certs.RootPool([]string{good})
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := ca.SMIMECertificate(t, "gp@a81001.nhs.example")
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("a certificate of the added CA does not verify: %v", err)
	}
	bad := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(bad, []byte("nothing"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.RootPool([]string{good, bad}); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("RootPool(file without a certificate) = %v, want an error naming it", err)
	}
}
