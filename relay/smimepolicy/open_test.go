package smimepolicy_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nhsrelay/certs/certstest"
	"nhsrelay/certs/smime"
	"nhsrelay/relay"
	"nhsrelay/relay/queue"
	"nhsrelay/relay/smimepolicy"
)

// seal makes what another relay would send: msg signed by s, encrypted to
// to, with outer trace fields in front.
func seal(t *testing.T, s smime.Signer, to *x509.Certificate, msg []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	out.WriteString("Received: from relay.a81001.nhs.test by relay.rx9.nhs.test with ESMTPS; Mon, 2 Mar 2026 09:00:01 +0000\r\n")
	if err := smime.Seal(&out, bytes.NewReader(msg), s, []*x509.Certificate{to}, smime.OuterHeader{From: []string{senderAddr}, To: []string{hostedAddr}}); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func (f *fixture) hostedCert() *x509.Certificate {
	c, err := x509.ParseCertificate(f.dir.get(hostedAddr).Certificates[0])
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func inbound(id string) queue.Message {
	return queue.Message{ID: id, From: senderAddr, Inbound: true, ClientIP: "192.0.2.7", Received: time.Now()}
}

func (f *fixture) open(m queue.Message, data []byte) (string, error) {
	f.t.Helper()
	var out bytes.Buffer
	err := f.p.Open(f.t.Context(), m, f.dir.get(hostedAddr), newBody(data), &out)
	return out.String(), err
}

func TestOpenVerified(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	org, _ := f.signer(f.keys, "A81001")
	mailbox, _ := f.signer(f.keys, senderAddr)
	for _, tc := range []struct {
		name   string
		signer smime.Signer
		trace  string
	}{
		{"organisation certificate", org, "X-NHSRelay-SMIME: verified; signer=ODS A81001; ods=A81001; alg=\"AES-256-CBC, RSAES-OAEP-SHA256\"; by=relay.rx9.nhs.test\r\n"},
		{"mailbox of the organisation", mailbox, "X-NHSRelay-SMIME: verified; signer=" + senderAddr + "; ods=A81001; alg=\"AES-256-CBC, RSAES-OAEP-SHA256\"; by=relay.rx9.nhs.test\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := f.open(inbound("I1"), seal(t, tc.signer, f.hostedCert(), message(senderAddr, hostedAddr, "tok1")))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !strings.HasPrefix(got, tc.trace) {
				t.Errorf("delivered message starts %q, want trace %q", got[:min(len(got), 200)], tc.trace)
			}
			if n := strings.Count(strings.ToLower(got), "x-nhsrelay-smime"); n != 1 {
				t.Errorf("%d X-NHSRelay-SMIME fields, want only ours (the forged one stripped):\n%s", n, got)
			}
			for _, want := range []string{"Received: from relay.a81001.nhs.test", "Subject: blood results for patient tok1", "Haemoglobin normal. tok1"} {
				if !strings.Contains(got, want) {
					t.Errorf("delivered message lacks %q", want)
				}
			}
		})
	}
	if evs := f.audit.Find("smime.opened"); len(evs) != 2 || !strings.Contains(evs[0].Detail, "A81001") || strings.Contains(evs[0].Detail, "tok1") {
		t.Errorf("opened events = %+v", evs)
	}
}

// TestOpenOpenSSLSent: a message openssl cms -sign | -encrypt produced
// (PKCS#1 v1.5 key transport, openssl's default) is opened, and the legacy
// key transport is audited.
func TestOpenOpenSSLSent(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	msgFile := filepath.Join(t.TempDir(), "msg.eml")
	os.WriteFile(msgFile, message(senderAddr, hostedAddr, "tok9"), 0o600)
	signed := certstest.OpenSSL(t, nil, "cms", "-sign", "-in", msgFile, "-signer", f.certFile["A81001"],
		"-inkey", filepath.Join(f.keys, "A81001.key"), "-md", "sha256")
	enc := certstest.OpenSSL(t, signed, "cms", "-encrypt", "-aes256", "-from", senderAddr, "-to", hostedAddr, "-subject", "Encrypted", f.certFile[hostedAddr])
	got, err := f.open(inbound("I9"), enc)
	if err != nil {
		t.Fatalf("Open(openssl): %v", err)
	}
	if !strings.HasPrefix(got, "X-NHSRelay-SMIME: verified; signer=ODS A81001; ods=A81001;") || !strings.Contains(got, "tok9") {
		t.Errorf("delivered:\n%s", got)
	}
	if evs := f.audit.Find("smime.legacy_key_transport"); len(evs) != 1 {
		t.Errorf("legacy events = %+v, want one for openssl's PKCS#1 v1.5", evs)
	}
}

func TestOpenQuarantines(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	org, _ := f.signer(f.keys, "A81001")
	rx9, _ := f.signer(f.keys, "RX9")
	good := message(senderAddr, hostedAddr, "tok2")

	// A81001's name on a certificate from a CA nobody trusts.
	rogue := certstest.NewCA(t)
	rk := rsaKey(t, 2048)
	rc := rogue.Issue(t, &x509.Certificate{Subject: pkix.Name{SerialNumber: "A81001"},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}, rk.Public())
	rogueSigner := smime.Signer{Cert: rc, Key: rk}

	tampered := seal(t, org, f.hostedCert(), good)
	start := bytes.Index(tampered, []byte("\r\n\r\n")) + 4
	i := start + (len(tampered)-start)/2 // inside the base64 ciphertext
	for tampered[i] == '\r' || tampered[i] == '\n' {
		i++
	}
	if tampered[i] == 'A' {
		tampered[i] = 'B'
	} else {
		tampered[i] = 'A'
	}
	remoteCert, _ := x509.ParseCertificate(f.dir.get(remoteAddr).Certificates[0])

	for _, tc := range []struct {
		name string
		data []byte
		kind error  // nil: a policy reason, not an smime failure
		want string // in the reason
	}{
		{"plain", good, smime.ErrNotEncrypted, ""},
		{"tampered", tampered, nil, ""},
		{"wrong key", seal(t, org, remoteCert, good), smime.ErrCannotDecrypt, ""},
		{"untrusted signer", seal(t, rogueSigner, f.hostedCert(), good), smime.ErrUntrustedSigner, ""},
		{"organisation mismatch", seal(t, rx9, f.hostedCert(), good), nil,
			"the message is signed by ODS RX9, which does not belong to organisation A81001 that the sender " + senderAddr + " belongs to"},
		{"sender not in directory", seal(t, org, f.hostedCert(), message("someone@else.test", hostedAddr, "tok3")), nil,
			"the sender someone@else.test is not in the NHS directory"},
		{"no From", seal(t, org, f.hostedCert(), []byte("Subject: x\r\n\r\nbody\r\n")), nil, "no From address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "Q" + strings.ReplaceAll(tc.name, " ", "-")
			m := inbound(id)
			got, err := f.open(m, tc.data)
			if !errors.Is(err, relay.ErrQuarantine) {
				t.Fatalf("Open = %v, want ErrQuarantine", err)
			}
			if got != "" {
				t.Errorf("Open wrote %d bytes towards the mailbox", len(got))
			}
			var qe *smimepolicy.QuarantineError
			if !errors.As(err, &qe) || qe.Reason == "" || !strings.Contains(err.Error(), qe.Reason) {
				t.Fatalf("error %v carries no reason", err)
			}
			if tc.kind != nil && !errors.Is(err, tc.kind) {
				t.Errorf("error = %v, want kind %v", err, tc.kind)
			}
			if tc.name == "tampered" && !errors.Is(err, smime.ErrTampered) && !errors.Is(err, smime.ErrMalformed) {
				t.Errorf("tampered: error = %v", err)
			}
			if !strings.Contains(qe.Reason, tc.want) {
				t.Errorf("reason = %q, want it to contain %q", qe.Reason, tc.want)
			}
			// Kept as it arrived, encrypted at rest; a record says why.
			rc, err := f.p.QuarantinedMessage(qe.ID)
			if err != nil {
				t.Fatalf("QuarantinedMessage: %v", err)
			}
			kept, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(kept, tc.data) {
				t.Errorf("quarantine holds %d bytes, want the %d that arrived", len(kept), len(tc.data))
			}
			raw, _ := os.ReadFile(filepath.Join(f.quar, qe.ID+".msg"))
			if bytes.Contains(raw, []byte("Haemoglobin")) || bytes.Contains(raw, []byte("From:")) {
				t.Errorf("quarantine file is not encrypted at rest")
			}
			if fi, err := os.Stat(filepath.Join(f.quar, qe.ID+".json")); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("record: %v, mode %v", err, fi.Mode())
			}
			// Repeating the attempt (a crash before the relay recorded it)
			// does not duplicate anything.
			if _, err := f.open(m, tc.data); !errors.Is(err, relay.ErrQuarantine) {
				t.Errorf("repeat Open = %v", err)
			}
			notices := mailbox(t, filepath.Join(f.mail, hostedAddr), id)
			if len(notices) != 1 || !strings.Contains(notices[0], qe.Reason) || !strings.Contains(notices[0], qe.ID) ||
				!strings.HasPrefix(notices[0], "X-NHSRelay-SMIME: system; by=relay.rx9.nhs.test (notice generated by this relay;") ||
				strings.Contains(notices[0], "tok2") || strings.Contains(notices[0], "Haemoglobin") {
				t.Errorf("owner notices = %q", notices)
			}
		})
	}
	recs, err := f.p.Quarantined()
	if err != nil || len(recs) != 7 {
		t.Errorf("Quarantined = %d records, %v; want 7", len(recs), err)
	}
	if evs := f.audit.Find("smime.quarantined"); len(evs) < 7 {
		t.Errorf("%d quarantined events, want at least 7", len(evs))
	}
}

// mailbox returns the messages in a Maildir's new/ whose name holds key.
func mailbox(t *testing.T, dir, key string) []string {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(dir, "new"))
	var out []string
	for _, e := range entries {
		if strings.Contains(e.Name(), key) {
			b, err := os.ReadFile(filepath.Join(dir, "new", e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(b))
		}
	}
	return out
}

// A hosted endpoint without its key on this relay is this relay's fault:
// retried, not quarantined.
func TestOpenWithoutKeyDefers(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	org, _ := f.signer(f.keys, "A81001")
	data := seal(t, org, f.hostedCert(), message(senderAddr, hostedAddr, "tok4"))
	os.Remove(filepath.Join(f.keys, hostedAddr+".key"))
	_, err := f.open(inbound("I4"), data)
	if err == nil || errors.Is(err, relay.ErrQuarantine) || !errors.Is(err, smimepolicy.ErrNoKey) {
		t.Errorf("Open without the endpoint key = %v, want a retryable ErrNoKey", err)
	}
}

// TestOpenLocal: only an authenticated account's mail and the relay's own
// System mail reach a hosted mailbox without S/MIME.
func TestOpenLocal(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	msg := message(senderAddr, hostedAddr, "tok5")
	for _, tc := range []struct {
		name  string
		m     queue.Message
		trace string
	}{
		{"account", queue.Message{ID: "L1", Account: "gp", From: senderAddr},
			"X-NHSRelay-SMIME: authenticated; account=gp; ods=A81001; by=relay.rx9.nhs.test (submitted on this relay; not S/MIME signed)\r\n"},
		{"relay DSN", queue.Message{ID: "L2", System: true},
			"X-NHSRelay-SMIME: system; by=relay.rx9.nhs.test (generated by this relay; not clinical, not S/MIME signed)\r\n"},
		{"relay system mail", queue.Message{ID: "L3", From: "postmaster@relay.rx9.nhs.test", System: true},
			"X-NHSRelay-SMIME: system; by=relay.rx9.nhs.test (generated by this relay; not clinical, not S/MIME signed)\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := f.p.Open(t.Context(), tc.m, f.dir.get(hostedAddr), newBody(msg), &out); err != nil {
				t.Fatal(err)
			}
			got := out.String()
			if !strings.HasPrefix(got, tc.trace) || strings.Count(got, "X-NHSRelay-SMIME") != 1 || strings.Contains(got, "forged") {
				t.Errorf("delivered:\n%s", got)
			}
			if !strings.HasSuffix(got, "Haemoglobin normal. tok5\r\n") {
				t.Errorf("body changed:\n%s", got)
			}
		})
	}
}

// TestOpenNeedsSMIME: mail for a hosted endpoint that is neither an
// account's nor the relay's own must be S/MIME, whichever way it came in:
// a trusted-network client's MX transaction that also had a remote
// recipient (so smtpd cleared Inbound), a null sender a client sent, and
// System claimed by mail that came over MX.
func TestOpenNeedsSMIME(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	plain := message(senderAddr, hostedAddr, "tok6")
	org, _ := f.signer(f.keys, "A81001")
	sealed := seal(t, org, f.hostedCert(), plain)
	for _, tc := range []struct {
		name string
		m    queue.Message
	}{
		{"trusted network, mixed transaction", queue.Message{ID: "N1", From: senderAddr, ClientIP: "10.0.0.5"}},
		{"null sender from a client", queue.Message{ID: "N2", ClientIP: "10.0.0.5"}},
		{"system over MX", queue.Message{ID: "N3", From: senderAddr, ClientIP: "192.0.2.7", Inbound: true, System: true}},
		{"account over MX", queue.Message{ID: "N4", From: senderAddr, ClientIP: "192.0.2.7", Inbound: true, Account: "gp"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := f.p.Open(t.Context(), tc.m, f.dir.get(hostedAddr), newBody(plain), &out)
			var qe *smimepolicy.QuarantineError
			if !errors.As(err, &qe) || !errors.Is(err, relay.ErrQuarantine) || out.Len() != 0 {
				t.Fatalf("Open(plain) = %v, wrote %d bytes; want quarantine", err, out.Len())
			}
			if want := "the message was not S/MIME encrypted; clinical mail to this endpoint must be"; qe.Reason != want {
				t.Errorf("reason = %q, want %q", qe.Reason, want)
			}
			// The same message sealed by its sender is delivered, verified.
			tc.m.ID += "S"
			out.Reset()
			if err := f.p.Open(t.Context(), tc.m, f.dir.get(hostedAddr), newBody(sealed), &out); err != nil {
				t.Fatalf("Open(sealed) = %v", err)
			}
			if !strings.HasPrefix(out.String(), "X-NHSRelay-SMIME: verified; signer=ODS A81001; ods=A81001;") {
				t.Errorf("delivered:\n%s", out.String())
			}
		})
	}
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	t.Parallel()
	_, err := smimepolicy.New(smimepolicy.Config{RelayODS: "not an ods"})
	for _, want := range []string{"Hostname", "KeysDir", "Trust.Roots", "Directory", "QuarantineDir", "RelayODS"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New(empty) = %v, want it to name %s", err, want)
		}
	}
}

// FuzzOpenInbound feeds arbitrary inbound mail (MIME + CMS) to Open: it
// never panics, and either delivers a verified message under our trace
// header or quarantines it, writing nothing towards the mailbox.
func FuzzOpenInbound(f *testing.F) {
	fx := newFixture(f, nil)
	org, _ := fx.signer(fx.keys, "A81001")
	good := message(senderAddr, hostedAddr, "fuzz")
	var sealed bytes.Buffer
	if err := smime.Seal(&sealed, bytes.NewReader(good), org, []*x509.Certificate{fx.hostedCert()}, smime.OuterHeader{}); err != nil {
		f.Fatal(err)
	}
	for _, s := range [][]byte{sealed.Bytes(), good, nil, []byte("Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\nMIIB\r\n"),
		[]byte("Content-Type: multipart/signed; boundary=x\r\n\r\n--x\r\n\r\n--x--\r\n")} {
		f.Add(s)
	}
	ep := fx.dir.get(hostedAddr)
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		err := fx.p.Open(context.Background(), inbound("FUZZ"), ep, newBody(data), &out)
		switch {
		case err == nil:
			if !strings.HasPrefix(out.String(), "X-NHSRelay-SMIME: verified; ") {
				t.Fatalf("delivered without the verified trace: %.100q", out.String())
			}
		case !errors.Is(err, relay.ErrQuarantine):
			t.Fatalf("Open = %v, want delivery or quarantine", err)
		case out.Len() != 0:
			t.Fatalf("quarantined, but wrote %d bytes", out.Len())
		}
	})
}
