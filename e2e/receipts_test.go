package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"nhsrelay/directory"
	"nhsrelay/relay/relaytest"
)

// Issue 12's recipients on A besides RX9's referrals mailbox on B.
const (
	sinkTo     = "lab.rx9@sink.nhs.example"     // a next hop that does not offer DSN
	refusingTo = "audit.rx9@refuse.nhs.example" // a next hop that refuses the recipient
	reader     = "rx9reader"                    // an account on A that sends as RX9's referrals mailbox (the MDN)
	readerPass = "correct horse battery staple 12"
)

// TestProofOfDelivery: client → A (NOTIFY=SUCCESS, RET=FULL, a
// Thunderbird-style MDN request) → S/MIME → B delivers into the mailbox →
// B's success DSN, signed by B's organisation and encrypted, back to A →
// the sender's mailbox on A, verified. Both sides' trace show the path;
// the sender's own status API shows the message to its account only. A
// next hop without DSN gives a "relayed" receipt; NOTIFY=NEVER gives
// nothing even on failure; a returned MDN lands on the original's
// timeline.
func TestProofOfDelivery(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	a := initInstance(t, bin, "a")
	b := initInstance(t, bin, "b")

	// A's MX address must be known to B's directory before B starts, and
	// B's to A's: A's port is chosen by the kernel first, then reused.
	mxA := reservePort(t)
	anchors := quoteList(a.path("ca", "ca.crt"), b.path("ca", "ca.crt"))
	for _, in := range []*instance{a, b} {
		mx := `"127.0.0.1:0"`
		if in == a {
			mx = strconv.Quote(mxA)
		}
		in.setKeys(t, map[string]string{
			"submission_listen": strconv.Quote("127.0.0.1:0"), "submissions_listen": `""`, "mx_listen": mx,
			"listen": strconv.Quote("127.0.0.1:0"), "status_listen": strconv.Quote("127.0.0.1:0"),
			"ca_files": anchors, "trust_anchors": anchors, "org_cas": anchors, "retry_min": `"1s"`, "retry_max": `"2s"`,
		})
	}
	aSender := readCert(t, a.path("keys", sender+".crt"))
	b.editDirectory(t, func(ctx context.Context, d *directory.Directory) {
		ep, err := d.Lookup(ctx, sender)
		if err != nil {
			t.Fatal(err)
		}
		ep.NextHop = directory.NextHop{Kind: directory.HopHost, Host: mxA, TLS: directory.TLSVerified}
		ep.Certificates = [][]byte{aSender.Raw}
		if err := d.UpdateEndpoint(ctx, ep); err != nil {
			t.Fatal(err)
		}
	})
	srvB := b.serve(t)

	noDSN := relaytest.Start(t, relaytest.Options{})
	refusing := relaytest.Start(t, relaytest.Options{})
	refusing.SetRcpt(func(string) error { return relaytest.Reply(550, 1, 1, "no such mailbox") })
	bCert := readCert(t, b.path("keys", recipient+".crt"))
	a.editDirectory(t, func(ctx context.Context, d *directory.Directory) {
		ep, err := d.Lookup(ctx, recipient)
		if err != nil {
			t.Fatal(err)
		}
		ep.NextHop = directory.NextHop{Kind: directory.HopHost, Host: srvB.addr(t, "mx"), TLS: directory.TLSVerified}
		ep.Certificates = [][]byte{bCert.Raw}
		if err := d.UpdateEndpoint(ctx, ep); err != nil {
			t.Fatal(err)
		}
		// Two loopback sinks as TLS-only exceptions (no S/MIME), plain.
		for addr, host := range map[string]string{sinkTo: noDSN.Addr, refusingTo: refusing.Addr} {
			e, err := d.AddEndpoint(ctx, directory.Endpoint{Address: addr, ODS: "RX9", TLSOnly: true, TLSOnlyEvidence: "e2e sink",
				NextHop: directory.NextHop{Kind: directory.HopHost, Host: host, TLS: directory.TLSPlainLoopback}})
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Attest(ctx, e.ID, "e2e test endpoint"); err != nil {
				t.Fatal(err)
			}
		}
		hash, err := directory.HashPasswordCost(readerPass, 4)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.PutAccount(ctx, directory.Account{Username: reader, PasswordHash: hash, ODS: "RX9", Addresses: []string{recipient}}); err != nil {
			t.Fatal(err)
		}
	})
	srvA := a.serve(t)
	subA := srvA.addr(t, "submission")
	token := fmt.Sprintf("pod-%d", time.Now().UnixNano())
	mid := "<" + token + "@nhs.example>"

	// 1. NOTIFY=SUCCESS, RET=FULL, MDN requested: to RX9 on B.
	msg := "From: Riverside reception <" + sender + ">\r\nTo: <" + recipient + ">\r\nSubject: Discharge summary " + token +
		"\r\nMessage-ID: " + mid + "\r\nDisposition-Notification-To: Riverside reception <" + sender + ">\r\n" +
		"Date: " + time.Now().Format(time.RFC1123Z) + "\r\n\r\nClinical text " + token + "\r\n"
	submit(t, a, subA, account, a.password, recipient, msg, smtp.DSNReturnFull, []smtp.DSNNotify{smtp.DSNNotifySuccess})

	got := b.waitMaildir(t, recipient, 1)[0]
	if !strings.Contains(got, "Disposition-Notification-To: Riverside reception <"+sender+">") || !strings.Contains(got, "X-NHSRelay-SMIME: verified") {
		t.Errorf("B's mailbox message lost the MDN request or was not verified S/MIME:\n%s", got)
	}
	receipt := a.waitMaildir(t, sender, 1)[0]
	assertAudit(t, b, "smime.sealed", sender) // B's receipt left B signed and encrypted, like clinical mail
	if !strings.Contains(receipt, "X-NHSRelay-SMIME: verified; signer=ODS A81001") || !strings.Contains(receipt, "dsn;") {
		t.Errorf("the receipt on A is not a verified, signed report from B's organisation:\n%s", receipt)
	}
	py := pythonReport(t, receipt)
	for _, want := range []string{"multipart/report delivery-status", "rcpt rfc822; " + recipient + " delivered 2.0.0", "part text/rfc822-headers"} {
		if !strings.Contains(py, want) {
			t.Errorf("python3 reads the receipt as:\n%s\nwant %q", py, want)
		}
	}
	if strings.Contains(receipt, "Clinical text") || strings.Contains(receipt, "Discharge summary") || strings.Contains(py, "message/rfc822") {
		t.Errorf("RET=FULL on an encrypted message must return headers only, without Subject:\n%s", receipt)
	}
	human := strings.Join(strings.Fields(receipt), " ")
	if !strings.Contains(human, "Delivered to "+recipient+" at ") {
		t.Errorf("the receipt does not read like a transmission slip:\n%s", receipt)
	}

	// Both sides' trace, by Message-ID.
	traceA := waitTrace(t, a, mid, "HAS IT    "+recipient)
	for _, want := range []string{"accepted", "smime.sealed", "cert_sha256=", "delivered", "tls=TLS", "peer=CN=",
		"dsn=passed on", "dsn.received", "confirmed by the receiving relay"} {
		if !strings.Contains(traceA, want) {
			t.Errorf("A's trace lacks %q:\n%s", want, traceA)
		}
	}
	t.Logf("nhsrelay trace on A:\n%s", traceA)
	traceB := waitTrace(t, b, mid, "HAS IT    "+recipient)
	t.Logf("nhsrelay trace on B:\n%s", traceB)
	for _, want := range []string{"inbound", "smime.opened", "in the mailbox on this relay", "dsn.sent", "action=delivered"} {
		if !strings.Contains(traceB, want) {
			t.Errorf("B's trace lacks %q:\n%s", want, traceB)
		}
	}

	// 2. The returned MDN (Thunderbird's shape) lands on the original's timeline on A.
	mdn, err := os.ReadFile("../relay/dsn/testdata/thunderbird-mdn.eml")
	if err != nil {
		t.Fatal(err)
	}
	mdnMsg := strings.ReplaceAll(string(mdn), "<e2e-token@nhs.example>", mid)
	submit(t, a, subA, reader, readerPass, sender, mdnMsg, "", nil)
	waitTrace(t, a, mid, "read receipt: manual-action/MDN-sent-manually; displayed")

	// 3. A next hop without DSN: a "relayed" receipt.
	submit(t, a, subA, account, a.password, sinkTo, plainMsg(sinkTo, token+"-sink"), "", []smtp.DSNNotify{smtp.DSNNotifySuccess})
	relayed := a.waitMaildir(t, sender, 3) // receipt, MDN, relayed receipt
	if !anyContains(relayed, "Action: relayed") {
		t.Errorf("no relayed receipt for a next hop without DSN among:\n%s", strings.Join(relayed, "\n-----\n"))
	}

	// 4. NOTIFY=NEVER: a refused recipient, and nothing comes back.
	submit(t, a, subA, account, a.password, refusingTo, plainMsg(refusingTo, token+"-never"), "", []smtp.DSNNotify{smtp.DSNNotifyNever})
	waitTrace(t, a, "<"+token+"-never@nhs.example>", "WILL NOT  "+refusingTo)
	assertAudit(t, a, "dsn.suppressed", refusingTo)
	if n := len(a.waitMaildir(t, sender, 3)); n != 3 {
		t.Errorf("sender's mailbox has %d messages after NOTIFY=NEVER, want still 3", n)
	}

	// 5. The sender's own status API: its account sees the message; another does not.
	id := queueIDOf(t, traceA)
	if code, body := status(t, a, srvA, account, a.password, id); code != http.StatusOK || !strings.Contains(body, `"have":["`+recipient+`"]`) {
		t.Errorf("riverside GET own message = %d %s", code, body)
	}
	if code, _ := status(t, a, srvA, reader, readerPass, id); code != http.StatusNotFound {
		t.Errorf("another account GET riverside's message = %d, want 404", code)
	}
	if code, _ := status(t, a, srvA, account, "wrong password 123456", id); code != http.StatusUnauthorized {
		t.Errorf("wrong password = %d, want 401", code)
	}
}

// reservePort returns a loopback address with a port the kernel chose,
// released for the instance to bind.
func reservePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func plainMsg(to, token string) string {
	return "From: <" + sender + ">\r\nTo: <" + to + ">\r\nSubject: results\r\nMessage-ID: <" + token + "@nhs.example>\r\n\r\nBody " + token + "\r\n"
}

// submit sends msg over STARTTLS with AUTH PLAIN and the DSN parameters.
func submit(t *testing.T, in *instance, addr, user, pass, to, msg string, ret smtp.DSNReturn, notify []smtp.DSNNotify) {
	t.Helper()
	c, err := smtp.DialStartTLS(addr, in.tlsClient(t))
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
		t.Fatalf("AUTH %s: %v", user, err)
	}
	from := sender
	if user == reader {
		from = recipient
	}
	if err := c.Mail(from, &smtp.MailOptions{Return: ret, EnvelopeID: "E2E"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(to, &smtp.RcptOptions{Notify: notify}); err != nil {
		t.Fatalf("RCPT %s: %v", to, err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, msg)
	if err := w.Close(); err != nil {
		t.Fatalf("DATA: %v", err)
	}
	c.Quit()
}

// waitTrace runs `nhsrelay trace` (bounded) until its report holds want.
func waitTrace(t *testing.T, in *instance, query, want string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := exec.Command(in.bin, "trace", "-c", in.path("nhsrelay.toml"), query).CombinedOutput()
		if err == nil && strings.Contains(string(out), want) {
			return string(out)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: trace %s never showed %q; last:\n%s (%v)", in.name, query, want, out, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func queueIDOf(t *testing.T, report string) string {
	t.Helper()
	_, rest, ok := strings.Cut(report, "queue ID ")
	if !ok || len(rest) < 26 {
		t.Fatalf("no queue ID in:\n%s", report)
	}
	return rest[:26]
}

// status asks the instance's status API as an account.
func status(t *testing.T, in *instance, srv *server, user, pass, id string) (int, string) {
	t.Helper()
	cl := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: in.tlsClient(t)}}
	req, _ := http.NewRequest("GET", "https://"+srv.addr(t, "status")+"/v1/messages/"+id, nil)
	req.SetBasicAuth(user, pass)
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var compact bytes.Buffer
	json.Compact(&compact, body)
	return resp.StatusCode, compact.String()
}

func anyContains(msgs []string, s string) bool {
	for _, m := range msgs {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// pythonReport has python3's email package, which we did not write, read
// a DSN as delivered into a Maildir.
func pythonReport(t *testing.T, msg string) string {
	t.Helper()
	const script = `
import sys, email
m = email.message_from_bytes(sys.stdin.buffer.read())
print(m.get_content_type(), m.get_param("report-type"))
for p in m.get_payload():
    ct = p.get_content_type()
    if ct == "message/delivery-status":
        for g in p.get_payload()[1:]:
            print("rcpt", g["Final-Recipient"], g["Action"], g["Status"])
    else:
        print("part", ct)
`
	cmd := exec.Command("python3", "-c", script)
	cmd.Stdin = strings.NewReader(msg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	return string(out)
}
