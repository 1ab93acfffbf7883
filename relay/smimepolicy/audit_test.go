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

	"nhsrelay/certs/certstest"
	"nhsrelay/directory"
	"nhsrelay/relay"
	"nhsrelay/relay/queue"
	"nhsrelay/relay/smimepolicy"
)

// TestAuditCarriesNoContent drives every event the policy records — held,
// sealed, TLS-only, legacy key transport both ways, opened and each kind of
// quarantine — with a token in the Subject and the body (and, where a
// message could smuggle it into a reason, in the decrypted MIME structure),
// and checks that no event says anything of the content.
func TestAuditCarriesNoContent(t *testing.T) {
	t.Parallel()
	const token = "tokaud"
	f := newFixture(t, func(c *smimepolicy.Config) { c.LegacyKeyTransport = []string{remoteAddr} })
	ctx := t.Context()
	msg := message(senderAddr, remoteAddr, token)
	sub := queue.Message{ID: "A1", Account: "gp", From: senderAddr}

	// Outbound: sealed (with legacy key transport), TLS-only, held.
	var out bytes.Buffer
	if err := f.p.Seal(ctx, sub, []directory.Endpoint{f.dir.get(remoteAddr)}, bytes.NewReader(msg), &out); err != nil {
		t.Fatalf("Seal: %v", err)
	}
	tlsOnly := directory.Endpoint{ID: "ep-t", Address: "fax@legacy.nhs.test", ODS: "RX9", TLSOnly: true}
	if err := f.p.Seal(ctx, sub, []directory.Endpoint{tlsOnly}, bytes.NewReader(msg), &out); err != nil {
		t.Fatalf("Seal(TLS-only): %v", err)
	}
	tmpl := mailboxTemplate("labs@rx9.nhs.test")
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-3*time.Hour), time.Now().Add(-2*time.Hour)
	expired := directory.Endpoint{ID: "ep-l", Address: "labs@rx9.nhs.test", ODS: "RX9",
		Certificates: [][]byte{f.ca.Issue(t, tmpl, rsaKey(t, 2048).Public()).Raw}}
	if err := f.p.Seal(ctx, sub, []directory.Endpoint{expired}, bytes.NewReader(msg), &out); !errors.Is(err, relay.ErrHold) {
		t.Fatalf("Seal(expired) = %v, want a hold", err)
	}

	// Inbound: opened (and openssl's PKCS#1 v1.5), body-signed, quarantines.
	org, _ := f.signer(f.keys, "A81001")
	rx9, _ := f.signer(f.keys, "RX9")
	hosted := message(senderAddr, hostedAddr, token)
	msgFile := filepath.Join(t.TempDir(), "msg.eml")
	os.WriteFile(msgFile, hosted, 0o600)
	signed := certstest.OpenSSL(t, nil, "cms", "-sign", "-in", msgFile, "-signer", f.certFile["A81001"],
		"-inkey", filepath.Join(f.keys, "A81001.key"), "-md", "sha256")
	// Encrypted, signed with something that is not S/MIME whose name
	// carries the token: the reason must not quote it.
	notSMIME := "Content-Type: multipart/signed; protocol=\"application/" + token + "-signature\"; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nHaemoglobin normal. " + token + "\r\n" +
		"--b\r\nContent-Type: application/" + token + "-signature\r\n\r\nAAAA\r\n--b--\r\n"
	hostedCert := f.hostedCert()
	remoteCert, _ := x509.ParseCertificate(f.dir.get(remoteAddr).Certificates[0])
	for i, data := range [][]byte{
		seal(t, org, hostedCert, hosted),
		certstest.OpenSSL(t, signed, "cms", "-encrypt", "-aes256", f.certFile[hostedAddr]),
		f.thunderbird(t, "A81001", senderAddr, token),
		hosted, // plain
		seal(t, rx9, hostedCert, hosted),
		seal(t, org, remoteCert, hosted),
		f.thunderbird(t, "RX9", senderAddr, token),
		certstest.OpenSSL(t, []byte(notSMIME), "cms", "-encrypt", "-aes256", f.certFile[hostedAddr]),
	} {
		m := inbound(string(rune('A'+i)) + "in")
		f.open(m, data)
	}
	for _, action := range []string{"smime.sealed", "smime.tls_only", "smime.held", "smime.legacy_key_transport",
		"smime.opened", "smime.quarantined"} {
		if len(f.audit.Find(action)) == 0 {
			t.Errorf("no %s event: the test does not cover it", action)
		}
	}
	for _, ev := range f.audit.Events() {
		all := strings.ToLower(strings.Join([]string{ev.Action, ev.Actor, ev.Endpoint, ev.QueueID, ev.Outcome, ev.Detail}, " "))
		for _, content := range []string{token, "haemoglobin", "blood results"} {
			if strings.Contains(all, content) {
				t.Errorf("%s event carries message content %q: %+v", ev.Action, content, ev)
			}
		}
	}
	recs, err := f.p.Quarantined()
	if err != nil || len(recs) < 5 {
		t.Fatalf("Quarantined = %d, %v", len(recs), err)
	}
	for _, rec := range recs {
		if strings.Contains(strings.ToLower(rec.Reason), token) {
			t.Errorf("quarantine record (kept in clear) quotes the message: %+v", rec)
		}
	}
}
