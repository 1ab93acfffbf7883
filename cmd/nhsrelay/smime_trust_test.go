package main

import (
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

// TestSMIMETrustLoad: the trust serve builds from [smime] believes ODS
// codes only from org_cas, checks the CRLs, and on SIGHUP (load) takes in
// a new CRL at once; a CRL file that no longer parses keeps the trust in
// force and names its key.
func TestSMIMETrustLoad(t *testing.T) {
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
	st, err := newSMIMETrust(&config{SMIMETrustAnchors: anchors, SMIMEOrgCAs: anchors[:1], SMIMECRLs: []string{crl}})
	if err != nil {
		t.Fatalf("newSMIMETrust: %v", err)
	}
	leaf, _ := ca.SMIMECertificate(t, "gp@a81001.nhs.example")
	if err := st.current().ValidateSMIME(leaf, nil, time.Now(), certs.Encrypt); err != nil {
		t.Fatalf("ValidateSMIME before revocation: %v", err)
	}

	write("ca.crl", ca.CRL(t, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour), leaf))
	if _, err := st.load(); err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := st.current().ValidateSMIME(leaf, nil, time.Now(), certs.Encrypt); !errors.Is(err, certs.ErrRevoked) {
		t.Errorf("ValidateSMIME after the new CRL = %v, want ErrRevoked", err)
	}

	before := st.current()
	write("ca.crl", []byte("half a download"))
	if _, err := st.load(); err == nil || !strings.Contains(err.Error(), "smime.crls[0]:") {
		t.Errorf("load of a broken CRL = %v, want an error naming smime.crls[0]", err)
	}
	if st.current() != before {
		t.Errorf("a failed load replaced the trust in force")
	}

	// An org CA that is not an anchor is refused, naming the key.
	_, err = newSMIMETrust(&config{SMIMETrustAnchors: anchors[:1], SMIMEOrgCAs: anchors[1:]})
	if err == nil || !strings.Contains(err.Error(), "smime.org_cas[0]: the CA") || !strings.Contains(err.Error(), "must also be a trust anchor") {
		t.Errorf("newSMIMETrust(org CA not an anchor) = %v", err)
	}
}
