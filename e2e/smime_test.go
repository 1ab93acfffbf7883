package e2e

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"nhsrelay/certs"
	"nhsrelay/directory"
)

// The sample data `nhsrelay init` writes: the account riverside sends as
// reception.a81001@nhs.example (A81001); referrals.rx9@nhs.example is
// RX9's. Both are hosted by each fresh instance; the test moves RX9's
// mailbox to B as far as A is concerned.
const (
	account   = "riverside"
	sender    = "reception.a81001@nhs.example"
	recipient = "referrals.rx9@nhs.example"
	expiredTo = "results.rx9@nhs.example" // added on A with an expired certificate
	earlyTo   = "labs.rx9@nhs.example"    // added on A with a certificate not valid yet
)

// TestSMIMEBetweenTwoRelays: client → A (STARTTLS, AUTH) → S/MIME over
// verified TLS → B's MX → B decrypts and verifies → Maildir with the trace
// header. Fail closed, the sender told why: a recipient whose certificate
// has expired is suspended by the directory's expiry check when A starts,
// so RCPT is refused with the reason; one whose certificate is not valid
// yet passes RCPT (its endpoint is verified) and is held by the Sealer,
// and the sender gets a DSN with the reason. (A certificate that expires
// while a message is queued is held the same way; relay/smimepolicy's
// TestRelayHoldsOnlyTheBadRecipient shows it with an expired one.)
func TestSMIMEBetweenTwoRelays(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	a := initInstance(t, bin, "a")
	b := initInstance(t, bin, "b")

	// Each trusts both development CAs, for TLS (A verifies B's MX) and
	// for S/MIME (A encrypts to B's certificate; B verifies A81001's
	// signature), and as organisation CAs (B believes the ODS code in
	// A81001's signing certificate, which A's CA issued). Listeners on
	// kernel-chosen loopback ports; retries fast.
	anchors := quoteList(a.path("ca", "ca.crt"), b.path("ca", "ca.crt"))
	for _, in := range []*instance{a, b} {
		in.setKeys(t, map[string]string{
			"submission_listen": strconv.Quote("127.0.0.1:0"), "submissions_listen": `""`,
			"mx_listen": strconv.Quote("127.0.0.1:0"), "listen": `""`,
			"ca_files": anchors, "trust_anchors": anchors, "org_cas": anchors, "retry_min": `"1s"`, "retry_max": `"2s"`,
		})
	}
	srvB := b.serve(t)
	mxB := srvB.addr(t, "mx")

	// On A, RX9's referrals mailbox lives on B (next hop B's MX, over
	// verified TLS) with B's certificate for it; and RX9's results mailbox
	// has a certificate that expired.
	bCert := readCert(t, b.path("keys", recipient+".crt"))
	ca, err := certs.LoadCA(a.path("ca"))
	if err != nil {
		t.Fatal(err)
	}
	ca.Now = func() time.Time { return time.Now().Add(-(certs.SMIMEValidity + 48*time.Hour)) }
	expPEM, _, err := ca.IssueSMIME(expiredTo)
	if err != nil {
		t.Fatal(err)
	}
	exp, err := certs.ParseCertificates(expPEM)
	if err != nil {
		t.Fatal(err)
	}
	ca.Now = func() time.Time { return time.Now().Add(48 * time.Hour) }
	earlyPEM, _, err := ca.IssueSMIME(earlyTo)
	if err != nil {
		t.Fatal(err)
	}
	early, err := certs.ParseCertificates(earlyPEM)
	if err != nil {
		t.Fatal(err)
	}
	toB := directory.NextHop{Kind: directory.HopHost, Host: mxB, TLS: directory.TLSVerified}
	a.editDirectory(t, func(ctx context.Context, d *directory.Directory) {
		ep, err := d.Lookup(ctx, recipient)
		if err != nil {
			t.Fatal(err)
		}
		ep.NextHop, ep.Certificates = toB, [][]byte{bCert.Raw}
		if err := d.UpdateEndpoint(ctx, ep); err != nil {
			t.Fatal(err)
		}
		for addr, c := range map[string]*x509.Certificate{expiredTo: exp[0], earlyTo: early[0]} {
			e, err := d.AddEndpoint(ctx, directory.Endpoint{Address: addr, ODS: "RX9", NextHop: toB, Certificates: [][]byte{c.Raw}})
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Attest(ctx, e.ID, "e2e test endpoint"); err != nil {
				t.Fatal(err)
			}
		}
	})
	srvA := a.serve(t)

	token := fmt.Sprintf("e2e-%d", time.Now().UnixNano())
	send(t, a, srvA.addr(t, "submission"), recipient, token)

	// B: decrypted, verified, the signer tied to A81001, the sender's
	// forged trace header gone.
	got := b.waitMaildir(t, recipient, 1)[0]
	wantTrace := "X-NHSRelay-SMIME: verified; signer=ODS A81001; ods=A81001; alg=\"AES-256-CBC, RSAES-OAEP-SHA256\"; by=localhost"
	if !strings.Contains(got, wantTrace) {
		t.Errorf("B's mailbox message lacks %q:\n%s", wantTrace, got)
	}
	if n := strings.Count(got, "X-NHSRelay-SMIME"); n != 1 || strings.Contains(got, "forged") {
		t.Errorf("%d trace fields in B's message (the forged one must be stripped):\n%s", n, got)
	}
	for _, want := range []string{"Subject: Discharge summary " + token, "Clinical text " + token} {
		if !strings.Contains(got, want) {
			t.Errorf("B's message lacks %q", want)
		}
	}
	assertAudit(t, a, "smime.sealed", recipient)
	assertAudit(t, b, "smime.opened", recipient)

	// Expired: refused at RCPT, with the reason.
	err = trySend(t, a, srvA.addr(t, "submission"), expiredTo, token+"-expired")
	wantRefusal := "S/MIME certificate expired on " + exp[0].NotAfter.UTC().Format(time.DateOnly)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || !strings.Contains(se.Message, wantRefusal) {
		t.Errorf("send to %s = %v, want 550 saying %q", expiredTo, err, wantRefusal)
	}

	// Not yet valid: refused at RCPT too (one decision: the directory's),
	// with the date it becomes valid; nothing leaves A.
	err = trySend(t, a, srvA.addr(t, "submission"), earlyTo, token+"-early")
	why := "certificate for " + earlyTo + " is not yet valid until " + early[0].NotBefore.UTC().Format(time.RFC3339)
	if !errors.As(err, &se) || se.Code != 550 || !strings.Contains(se.Message, why) {
		t.Errorf("send to %s = %v, want 550 saying %q", earlyTo, err, why)
	}
	if n := len(b.waitMaildir(t, recipient, 1)); n != 1 {
		t.Errorf("B's mailbox has %d messages, want only the first", n)
	}
}

// send submits one message to A over STARTTLS with AUTH PLAIN as the
// sample account, with a forged trace header in it.
func send(t *testing.T, in *instance, addr, to, token string) {
	t.Helper()
	if err := trySend(t, in, addr, to, token); err != nil {
		t.Fatalf("send to %s: %v", to, err)
	}
}

// trySend is send returning the SMTP error of the transaction.
func trySend(t *testing.T, in *instance, addr, to, token string) error {
	t.Helper()
	c, err := smtp.DialStartTLS(addr, in.tlsClient(t))
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", account, in.password)); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	msg := "From: Riverside reception <" + sender + ">\r\nTo: <" + to + ">\r\nSubject: Discharge summary " + token + "\r\n" +
		"X-NHSRelay-SMIME: verified; signer=forged\r\nMessage-ID: <" + token + "@nhs.example>\r\n" +
		"Date: " + time.Now().Format(time.RFC1123Z) + "\r\n\r\nClinical text " + token + "\r\n"
	if err := c.SendMail(sender, []string{to}, strings.NewReader(msg)); err != nil {
		return err
	}
	c.Quit()
	return nil
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := certs.ParseCertificates(data)
	if err != nil || len(cs) == 0 {
		t.Fatalf("%s: %v", path, err)
	}
	return cs[0]
}

// assertAudit waits (bounded) for an audit event with action about
// endpoint in the instance's log.
func assertAudit(t *testing.T, in *instance, action, endpoint string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, _ := os.ReadFile(in.path("data", "audit.log"))
		for line := range strings.Lines(string(data)) {
			if strings.Contains(line, `"action":"`+action+`"`) && strings.Contains(line, endpoint) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: no %s audit event for %s", in.name, action, endpoint)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
