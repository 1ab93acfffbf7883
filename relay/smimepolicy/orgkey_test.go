package smimepolicy_test

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nhsrelay/certs"
	"nhsrelay/certs/certstest"
	"nhsrelay/directory"
	"nhsrelay/relay/queue"
)

// TestOrganisationKeyTypes: the organisation signing pair may be ECDSA
// P-256 (what certs issue --smime ODS and init make: signing is ~100×
// cheaper than RSA-3072) or RSA-3072. Either way the recipient's openssl
// decrypts and verifies, and a receiving nhsrelay verifies the signer and
// ties it to the organisation.
func TestOrganisationKeyTypes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		key    crypto.Signer // nil: IssueSMIME's choice (P-256)
		sigAlg string
	}{
		{"ecdsa-p256", nil, "ecdsa-with-SHA256"},
		{"rsa-3072", rsaKey(t, 3072), "rsaEncryption"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil)
			ca := &certs.CA{Cert: f.ca.Cert, Key: f.ca.Key}
			certPEM, keyPEM, err := ca.IssueSMIME("A81001")
			if tc.key != nil {
				certPEM, keyPEM, err = ca.IssueSMIMEKey("A81001", tc.key)
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(f.keys, "A81001.crt"), certPEM, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(f.keys, "A81001.key"), keyPEM, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := f.p.Reload(); err != nil {
				t.Fatalf("Reload: %v", err)
			}
			_, kp := f.signer(f.keys, "A81001")
			if _, isRSA := kp.Key.Public().(*rsa.PublicKey); isRSA != (tc.key != nil) {
				t.Fatalf("organisation key is %T", kp.Key.Public())
			}

			// Outbound: the remote recipient reads and verifies it.
			m := queue.Message{ID: "Q-" + tc.name, From: senderAddr, Account: "gp"}
			out, err := sealTo(t, f, m, []directory.Endpoint{f.dir.get(remoteAddr)}, message(senderAddr, remoteAddr, "tok-"+tc.name))
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			remote := strings.TrimSuffix(f.certFile[remoteAddr], ".crt")
			dec := certstest.OpenSSL(t, out, "cms", "-decrypt", "-recip", remote+".crt", "-inkey", remote+".key")
			if printed := certstest.OpenSSL(t, dec, "cms", "-cmsout", "-print", "-inform", "SMIME"); !bytes.Contains(printed, []byte(tc.sigAlg)) {
				t.Errorf("signature is not %s", tc.sigAlg)
			}
			plain := certstest.OpenSSL(t, dec, "cms", "-verify", "-CAfile", f.caFile(), "-purpose", "smimesign")
			if !bytes.Contains(plain, []byte("Haemoglobin normal. tok-"+tc.name)) {
				t.Errorf("openssl verified content lacks the body:\n%s", plain)
			}
			evs := f.audit.Find("smime.sealed")
			if len(evs) != 1 || !strings.Contains(evs[0].Detail, "ODS A81001 (serial "+kp.Cert.SerialNumber.String()+")") {
				t.Errorf("smime.sealed events = %+v", evs)
			}
			// The sending organisation keeps a readable sent copy: with an
			// RSA signing key the key itself, with a P-256 one (no RSA key
			// transport) the sender's own endpoint certificate.
			if len(evs) == 1 && !strings.Contains(evs[0].Detail, "sent copy: true") {
				t.Errorf("no sent copy: %s", evs[0].Detail)
			}
			if tc.key == nil {
				own := strings.TrimSuffix(f.certFile[senderAddr], ".crt")
				if dec := certstest.OpenSSL(t, out, "cms", "-decrypt", "-recip", own+".crt", "-inkey", own+".key"); len(dec) == 0 {
					t.Errorf("the sender's endpoint cannot read the sent copy")
				}
			}

			// Inbound: a hosted endpoint's relay verifies the same signer.
			org, _ := f.signer(f.keys, "A81001")
			got, err := f.open(inbound("I-"+tc.name), seal(t, org, f.hostedCert(), message(senderAddr, hostedAddr, "in-"+tc.name)))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !strings.Contains(got, "X-NHSRelay-SMIME: verified") || !strings.Contains(got, "ods=A81001") {
				t.Errorf("delivered message lacks a verified trace for A81001:\n%s", got[:min(len(got), 600)])
			}
		})
	}
}
