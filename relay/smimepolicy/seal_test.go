package smimepolicy_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nhsrelay/certs"
	"nhsrelay/certs/certstest"
	"nhsrelay/directory"
	"nhsrelay/relay"
	"nhsrelay/relay/queue"
	"nhsrelay/relay/smimepolicy"
)

func sealTo(t *testing.T, f *fixture, m queue.Message, eps []directory.Endpoint, msg []byte) ([]byte, error) {
	t.Helper()
	var out bytes.Buffer
	err := f.p.Seal(t.Context(), m, eps, bytes.NewReader(msg), &out)
	return out.Bytes(), err
}

// TestSealOpenSSLReads: what Seal writes decrypts with openssl cms -decrypt
// for the recipient and for the sender organisation's sent copy, and the
// result verifies with openssl cms -verify against the S/MIME CA.
func TestSealOpenSSLReads(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	m := queue.Message{ID: "Q1", From: senderAddr, Account: "gp"}
	out, err := sealTo(t, f, m, []directory.Endpoint{f.dir.get(remoteAddr)}, message(senderAddr, remoteAddr, "tok1"))
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	outer, _, _ := strings.Cut(string(out), "\r\n\r\n")
	if strings.Contains(outer, "blood results") || !strings.Contains(outer, "Subject: Encrypted NHS message") {
		t.Errorf("outer header shows clinical content or no neutral subject:\n%s", outer)
	}
	if !strings.Contains(outer, "smime-type=enveloped-data") {
		t.Errorf("outer header is not enveloped-data:\n%s", outer)
	}
	sealed := filepath.Join(t.TempDir(), "sealed.eml")
	if err := os.WriteFile(sealed, out, 0o600); err != nil {
		t.Fatal(err)
	}
	ca := f.caFile()
	remoteDir := filepath.Dir(f.certFile[remoteAddr])
	for _, who := range []struct{ dir, name string }{{remoteDir, remoteAddr}, {f.keys, "A81001"}} {
		dec := certstest.OpenSSL(t, nil, "cms", "-decrypt", "-in", sealed,
			"-recip", filepath.Join(who.dir, who.name+".crt"), "-inkey", filepath.Join(who.dir, who.name+".key"))
		plain := certstest.OpenSSL(t, dec, "cms", "-verify", "-CAfile", ca, "-purpose", "smimesign")
		for _, want := range []string{"Subject: blood results for patient tok1", "Haemoglobin normal. tok1"} {
			if !bytes.Contains(plain, []byte(want)) {
				t.Errorf("%s: verified content lacks %q:\n%s", who.name, want, plain)
			}
		}
	}
	printed := certstest.OpenSSL(t, nil, "cms", "-cmsout", "-print", "-inform", "SMIME", "-in", sealed)
	for _, want := range []string{"aes-256-cbc", "rsaesOaep"} {
		if !bytes.Contains(printed, []byte(want)) {
			t.Errorf("CMS structure does not use %s", want)
		}
	}
	if n, oaep := bytes.Count(printed, []byte("keyEncryptionAlgorithm")), bytes.Count(printed, []byte("algorithm: rsaesOaep")); n != 2 || oaep != n {
		t.Errorf("%d recipients (want 2: recipient and sent copy), %d with RSAES-OAEP (want all)", n, oaep)
	}
	evs := f.audit.Find("smime.sealed")
	if len(evs) != 1 || evs[0].Endpoint != remoteAddr || !strings.Contains(evs[0].Detail, "RSAES-OAEP-SHA256") ||
		!strings.Contains(evs[0].Detail, "ODS A81001") || strings.Contains(evs[0].Detail, "tok1") {
		t.Errorf("smime.sealed events = %+v", evs)
	}
}

// TestSealHolds: a recipient without a valid certificate gets nothing, and
// the error is ErrHold with the exact reason the sender will read.
func TestSealHolds(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	other := certstest.NewCA(t)
	now := time.Now()
	issue := func(ca *certstest.CA, tmpl *x509.Certificate, bits int) *x509.Certificate {
		return ca.Issue(t, tmpl, rsaKey(t, bits).Public())
	}
	expired := mailboxTemplate(remoteAddr)
	expired.NotBefore, expired.NotAfter = now.Add(-3*time.Hour), now.Add(-2*time.Hour)
	early := mailboxTemplate(remoteAddr)
	early.NotBefore, early.NotAfter = now.Add(2*time.Hour), now.Add(20*time.Hour)
	noEKU := mailboxTemplate(remoteAddr)
	noEKU.ExtKeyUsage = nil
	signOnly := mailboxTemplate(remoteAddr)
	signOnly.KeyUsage = x509.KeyUsageDigitalSignature

	expiredCert := issue(f.ca, expired, 2048)
	earlyCert := issue(f.ca, early, 2048)
	for _, tc := range []struct {
		name string
		cert *x509.Certificate // nil: no certificate
		want string
		is   error
	}{
		{"missing", nil, "no S/MIME encryption certificate for " + remoteAddr + " in the NHS directory", nil},
		{"expired", expiredCert, "certificate for " + remoteAddr + " expired on " + expiredCert.NotAfter.UTC().Format(time.DateOnly), certs.ErrExpired},
		{"not yet valid", earlyCert, "certificate for " + remoteAddr + " is not yet valid until " + earlyCert.NotBefore.UTC().Format(time.RFC3339), certs.ErrNotYetValid},
		{"untrusted", issue(other, mailboxTemplate(remoteAddr), 2048), "certificate for " + remoteAddr + " is not issued by a trusted NHS CA", certs.ErrUntrusted},
		{"no emailProtection", issue(f.ca, noEKU, 2048), "certificate for " + remoteAddr + " lacks the emailProtection usage", certs.ErrWrongUsage},
		{"signing only", issue(f.ca, signOnly, 2048), "certificate for " + remoteAddr + " lacks the keyEncipherment usage needed to receive encrypted mail", certs.ErrWrongUsage},
		{"weak key", issue(f.ca, mailboxTemplate(remoteAddr), 1024), "certificate for " + remoteAddr + " is refused, key too weak: RSA 1024 bits (minimum 2048)", certs.ErrWeakKey},
		{"someone else's", issue(f.ca, mailboxTemplate("other@elsewhere.nhs.test"), 2048),
			"the S/MIME certificate in the NHS directory for " + remoteAddr + " is for other@elsewhere.nhs.test, not this endpoint (RFC 8550 §3)", nil},
		// The organisation's own certificate (ODS code only) signs; it
		// must not let the organisation's key holder read this endpoint.
		{"organisation only", issue(f.ca, orgTemplate("RX9"), 2048),
			"the S/MIME certificate in the NHS directory for " + remoteAddr + " names only organisation RX9 (ODS code), " +
				"which signs but cannot receive mail for one endpoint; it needs a certificate naming " + remoteAddr + " (RFC 8550 §3)", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep := directory.Endpoint{ID: "ep-x", Address: remoteAddr, ODS: "RX9", NextHop: directory.NextHop{Kind: directory.HopMX}}
			if tc.cert != nil {
				ep.Certificates = [][]byte{tc.cert.Raw}
			}
			m := queue.Message{ID: "Q2", From: senderAddr, Account: "gp"}
			out, err := sealTo(t, f, m, []directory.Endpoint{ep}, message(senderAddr, remoteAddr, "tok2"))
			if !errors.Is(err, relay.ErrHold) {
				t.Fatalf("Seal error = %v, want ErrHold", err)
			}
			if got := err.Error(); !strings.HasPrefix(got, tc.want) || (tc.name != "untrusted" && got != tc.want) {
				t.Errorf("Seal error = %q, want %q", got, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("Seal error does not wrap %v", tc.is)
			}
			if len(out) != 0 {
				t.Errorf("Seal wrote %d bytes for a held recipient", len(out))
			}
			if cerr := f.p.CheckRecipient(t.Context(), m, ep); cerr == nil || cerr.Error() != err.Error() {
				t.Errorf("CheckRecipient = %v, want the same hold", cerr)
			}
		})
	}
}

// A valid certificate next to an expired one is chosen; the hold reason
// names the newest certificate when none is valid.
func TestSealPicksValidCertificate(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	expired := mailboxTemplate(remoteAddr)
	expired.NotBefore, expired.NotAfter = time.Now().Add(-3*time.Hour), time.Now().Add(-2*time.Hour)
	old := f.ca.Issue(t, expired, rsaKey(t, 2048).Public())
	ep := f.dir.get(remoteAddr)
	ep.Certificates = [][]byte{old.Raw, ep.Certificates[0]}
	if _, err := sealTo(t, f, queue.Message{ID: "Q3", Account: "gp", From: senderAddr}, []directory.Endpoint{ep},
		message(senderAddr, remoteAddr, "tok3")); err != nil {
		t.Fatalf("Seal with one expired and one valid certificate: %v", err)
	}
}

// A domain endpoint takes a certificate naming an address in its domain,
// and nothing naming another domain or only its organisation; a mailbox
// certificate beside an organisation one is chosen.
func TestSealCertificateNamesEndpoint(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	issue := func(tmpl *x509.Certificate) []byte { return f.ca.Issue(t, tmpl, rsaKey(t, 2048).Public()).Raw }
	org := issue(orgTemplate("RX9"))
	for _, tc := range []struct {
		name  string
		ep    directory.Endpoint
		certs [][]byte
		ok    bool
	}{
		{"domain, address in it", directory.Endpoint{Address: "rx9.nhs.test", ODS: "RX9"}, [][]byte{issue(mailboxTemplate("inbox@rx9.nhs.test"))}, true},
		{"domain, other domain", directory.Endpoint{Address: "rx9.nhs.test", ODS: "RX9"}, [][]byte{issue(mailboxTemplate("inbox@rx9.nhs.test.evil"))}, false},
		{"domain, organisation only", directory.Endpoint{Address: "rx9.nhs.test", ODS: "RX9"}, [][]byte{org}, false},
		{"mailbox beside organisation", directory.Endpoint{Address: remoteAddr, ODS: "RX9"}, [][]byte{org, issue(mailboxTemplate(remoteAddr))}, true},
		{"CA certificate naming the address", directory.Endpoint{Address: remoteAddr, ODS: "RX9"}, [][]byte{issue(caTemplate(remoteAddr))}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.ep.ID, tc.ep.Certificates = "ep-"+tc.name, tc.certs
			err := f.p.CheckRecipient(t.Context(), queue.Message{ID: "QN", Account: "gp", From: senderAddr}, tc.ep)
			if (err == nil) != tc.ok {
				t.Errorf("CheckRecipient = %v, want ok=%t", err, tc.ok)
			}
			if !tc.ok && !errors.Is(err, relay.ErrHold) {
				t.Errorf("CheckRecipient = %v, want ErrHold", err)
			}
		})
	}
}

// caTemplate is a CA certificate that also names addr: an issuer, never a
// recipient.
func caTemplate(addr string) *x509.Certificate {
	c := mailboxTemplate(addr)
	c.IsCA, c.BasicConstraintsValid = true, true
	c.KeyUsage |= x509.KeyUsageCertSign
	return c
}

func TestSealSigningKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *smimepolicy.Config) {
		c.Accounts = accounts{"hill": {Username: "hill", ODS: "B82005"}}
		c.RelayODS = ""
	})
	ep := f.dir.get(remoteAddr)
	for _, tc := range []struct {
		m    queue.Message
		want string
	}{
		{queue.Message{ID: "Q4", Account: "hill", From: "a@hill.nhs.test"}, "no S/MIME signing key is installed on this relay for organisation B82005"},
		{queue.Message{ID: "Q5", From: ""}, "no organisation is configured to sign mail sent without an account on this relay, so it cannot be signed"},
	} {
		_, err := sealTo(t, f, tc.m, []directory.Endpoint{ep}, message(senderAddr, remoteAddr, "tok4"))
		if !errors.Is(err, relay.ErrHold) || err.Error() != tc.want {
			t.Errorf("Seal(%s) = %v, want hold %q", tc.m.ID, err, tc.want)
		}
	}
	// Mail without an account is signed by RelayODS.
	f2 := newFixture(t, nil)
	if _, err := sealTo(t, f2, queue.Message{ID: "Q6"}, []directory.Endpoint{f2.dir.get(remoteAddr)},
		message("MAILER-DAEMON@relay.rx9.nhs.test", remoteAddr, "tok5")); err != nil {
		t.Errorf("Seal of a DSN with RelayODS set: %v", err)
	}
	if evs := f2.audit.Find("smime.sealed"); len(evs) != 1 || !strings.Contains(evs[0].Detail, "ODS RX9") {
		t.Errorf("sealed events = %+v, want signed by RX9", evs)
	}
}

func TestTLSOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	tlsOnly := directory.Endpoint{ID: "ep-t", Address: "fax@legacy.nhs.test", ODS: "RX9", TLSOnly: true,
		NextHop: directory.NextHop{Kind: directory.HopMX}}
	msg := message(senderAddr, tlsOnly.Address, "tok6")
	m := queue.Message{ID: "Q7", Account: "gp", From: senderAddr}
	if err := f.p.CheckRecipient(t.Context(), m, tlsOnly); err != nil {
		t.Errorf("CheckRecipient(TLS-only) = %v", err)
	}
	out, err := sealTo(t, f, m, []directory.Endpoint{tlsOnly}, msg)
	if err != nil || !bytes.Equal(out, msg) {
		t.Errorf("Seal(TLS-only) = %v, output changed: %t", err, !bytes.Equal(out, msg))
	}
	if evs := f.audit.Find("smime.tls_only"); len(evs) != 1 || evs[0].Endpoint != tlsOnly.Address {
		t.Errorf("tls_only events = %+v", evs)
	}
	// Sharing a Seal call with a sealed recipient, it needs a certificate.
	_, err = sealTo(t, f, m, []directory.Endpoint{tlsOnly, f.dir.get(remoteAddr)}, msg)
	if !errors.Is(err, relay.ErrHold) {
		t.Errorf("Seal(TLS-only without certificate + sealed recipient) = %v, want hold", err)
	}
}

func TestLegacyKeyTransport(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *smimepolicy.Config) { c.LegacyKeyTransport = []string{remoteAddr} })
	out, err := sealTo(t, f, queue.Message{ID: "Q8", Account: "gp", From: senderAddr},
		[]directory.Endpoint{f.dir.get(remoteAddr)}, message(senderAddr, remoteAddr, "tok8"))
	if err != nil {
		t.Fatal(err)
	}
	sealed := filepath.Join(t.TempDir(), "sealed.eml")
	os.WriteFile(sealed, out, 0o600)
	printed := string(certstest.OpenSSL(t, nil, "cms", "-cmsout", "-print", "-inform", "SMIME", "-in", sealed))
	// Two recipients: the listed endpoint (PKCS#1 v1.5) and the sent copy (OAEP).
	if strings.Count(printed, "rsaEncryption") < 1 || strings.Count(printed, "rsaesOaep") < 1 {
		t.Errorf("want one PKCS#1 v1.5 and one OAEP recipient:\n%s", printed)
	}
	dec := certstest.OpenSSL(t, nil, "cms", "-decrypt", "-in", sealed, "-recip", f.certFile[remoteAddr],
		"-inkey", strings.TrimSuffix(f.certFile[remoteAddr], ".crt")+".key")
	if !bytes.Contains(dec, []byte("tok8")) {
		t.Errorf("legacy recipient cannot read it")
	}
	if evs := f.audit.Find("smime.legacy_key_transport"); len(evs) != 1 || evs[0].Endpoint != remoteAddr {
		t.Errorf("legacy events = %+v", evs)
	}
}

func TestReload(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	m := queue.Message{ID: "Q9", Account: "gp", From: senderAddr}
	if _, err := sealTo(t, f, m, []directory.Endpoint{f.dir.get(remoteAddr)}, message(senderAddr, remoteAddr, "a")); err != nil {
		t.Fatal(err)
	}
	// A renewed organisation pair is used after Reload.
	renewed := f.orgPair("A81001")
	if err := f.p.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if _, err := sealTo(t, f, m, []directory.Endpoint{f.dir.get(remoteAddr)}, message(senderAddr, remoteAddr, "b")); err != nil {
		t.Fatal(err)
	}
	evs := f.audit.Find("smime.sealed")
	if len(evs) != 2 || !strings.Contains(evs[1].Detail, renewed.SerialNumber.String()) {
		t.Errorf("after Reload, signed with %v; want serial %s", evs, renewed.SerialNumber)
	}
	// A broken pair is refused and the old one kept.
	os.WriteFile(filepath.Join(f.keys, "A81001.key"), []byte("garbage"), 0o600)
	if err := f.p.Reload(); err == nil {
		t.Errorf("Reload of a broken key: no error")
	}
	if _, err := sealTo(t, f, m, []directory.Endpoint{f.dir.get(remoteAddr)}, message(senderAddr, remoteAddr, "c")); err != nil {
		t.Errorf("Seal after a failed Reload: %v", err)
	}
}
