package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"nhsrelay/certs"
	"nhsrelay/directory"
)

// B's own practice in this test (A keeps the sample A81001 and RX9).
const (
	bODS    = "B82005"
	bSender = "reception.b82005@hillside.nhs.example"
	// syncEvery is federation.peer_sync_interval in this test.
	syncEvery = 2 * time.Second
)

// TestFederation is README's "Federation between relays over FHIR", run
// as written: two instances from `nhsrelay init`, each trusting only its
// own CA, become peers with one command each (`directory peer add`, after
// `serve`; A reads B's FHIR listener over HTTPS, B reads A's admin
// listener on loopback), then exchange S/MIME mail both ways through their MX
// listeners; a certificate renewed on B reaches A within a sync interval.
func TestFederation(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	a := initInstance(t, bin, "a")
	b := initInstance(t, bin, "b")

	// Stand-in for `init -ods -domain -ports` (being added on another
	// branch): loopback ports chosen by the kernel, a short sync interval,
	// and on B its own practice instead of the sample A81001/RX9 ones.
	// The trust settings are left as init wrote them: each instance
	// trusts its own CA only. B also serves FHIR over HTTPS on its own
	// listener, as between machines; A only on its admin listener.
	for _, in := range []*instance{a, b} {
		keys := map[string]string{
			"submission_listen": strconv.Quote("127.0.0.1:0"), "submissions_listen": `""`,
			"mx_listen": strconv.Quote("127.0.0.1:0"), "listen": strconv.Quote("127.0.0.1:0"),
			"peer_sync_interval": strconv.Quote(syncEvery.String()), "retry_min": `"1s"`, "retry_max": `"2s"`,
		}
		if in == b {
			keys["fhir_listen"] = strconv.Quote("127.0.0.1:0")
		}
		in.setKeys(t, keys)
	}
	makePractice(t, b, bODS, bSender)

	srvA, srvB := a.serve(t), b.serve(t)

	// The one command each: add the other as a peer.
	a.run(t, "directory", "-c", a.path("nhsrelay.toml"), "peer", "add", "b",
		"-url", "https://"+srvB.addr(t, "fhir")+"/fhir", "-token-file", b.path("fhir.token"), "-ca", b.path("ca", "ca.crt"))
	b.run(t, "directory", "-c", b.path("nhsrelay.toml"), "peer", "add", "a",
		"-url", "http://"+srvA.addr(t, "admin")+"/fhir", "-token-file", a.path("fhir.token"), "-ca", a.path("ca", "ca.crt"))
	if out := a.run(t, "directory", "-c", a.path("nhsrelay.toml"), "peer", "show", "b"); !strings.Contains(out, "endpoints     1 live") {
		t.Errorf("A's peer b:\n%s", out)
	}

	// A → B, through B's MX: decrypted and verified on B, the signer tied
	// to A81001 by A's CA, which B trusts for A's organisations only.
	token := fmt.Sprintf("fed-%d", time.Now().UnixNano())
	sendAs(t, a, srvA.addr(t, "submission"), a.password, sender, bSender, token+"-ab")
	got := b.waitMaildir(t, bSender, 1)[0]
	if want := "X-NHSRelay-SMIME: verified; signer=ODS A81001; ods=A81001;"; !strings.Contains(got, want) || !strings.Contains(got, token+"-ab") {
		t.Errorf("B's message lacks %q or the text:\n%s", want, got)
	}
	// B → A.
	sendAs(t, b, srvB.addr(t, "submission"), b.password, bSender, sender, token+"-ba")
	got = a.waitMaildir(t, sender, 1)[0]
	if want := "X-NHSRelay-SMIME: verified; signer=ODS " + bODS + "; ods=" + bODS + ";"; !strings.Contains(got, want) || !strings.Contains(got, token+"-ba") {
		t.Errorf("A's message lacks %q or the text:\n%s", want, got)
	}
	assertAudit(t, a, "smime.sealed", bSender)
	assertAudit(t, b, "smime.opened", bSender)

	// B renews its mailbox's certificate; A has it within a sync interval.
	renewed := filepath.Join(t.TempDir(), "renewed")
	b.run(t, "certs", "issue", "--smime", bSender, "--ca", b.path("ca"), "--out", renewed)
	b.run(t, "directory", "-c", b.path("nhsrelay.toml"), "set-cert", bSender, renewed+".crt")
	newCert := readCert(t, renewed+".crt")
	start := time.Now()
	for {
		var e directory.Endpoint
		out := a.run(t, "directory", "-c", a.path("nhsrelay.toml"), "show", "-json", bSender)
		if err := json.Unmarshal([]byte(out), &e); err != nil {
			t.Fatalf("A's directory show -json: %v\n%s", err, out)
		}
		if len(e.Certificates) > 0 && string(e.Certificates[0]) == string(newCert.Raw) {
			t.Logf("A took B's renewed certificate %s after the renewal (sync interval %s)", time.Since(start).Round(time.Millisecond), syncEvery)
			break
		}
		if time.Since(start) > 60*time.Second { // bounded: a loaded machine, many intervals
			t.Fatalf("A still has the old certificate for %s after %s", bSender, time.Since(start).Round(time.Second))
		}
		time.Sleep(200 * time.Millisecond)
	}
	assertAudit(t, a, "endpoint.certificates", bSender)
	assertAudit(t, a, "peer.certificates_changed", "")

	// The other peer commands: list, sync now, remove (B's endpoints retired on A).
	cfgA := a.path("nhsrelay.toml")
	if out := a.run(t, "directory", "-c", cfgA, "peer", "list"); !strings.Contains(out, "b ") || strings.Contains(out, "FAILING") {
		t.Errorf("peer list:\n%s", out)
	}
	a.run(t, "directory", "-c", cfgA, "peer", "sync", "b")
	a.run(t, "directory", "-c", cfgA, "peer", "remove", "b")
	if out := a.run(t, "directory", "-c", cfgA, "list", "-address", bSender); !strings.Contains(out, "retired") {
		t.Errorf("after peer remove, A lists %s as:\n%s", bSender, out)
	}
	assertAudit(t, a, "peer.removed", "")
}

// makePractice turns the instance (server stopped) into practice ods's
// relay: the sample A81001 and RX9 mailboxes are retired (they are A's),
// addr is hosted here with an S/MIME certificate from the instance's CA,
// the organisation gets its signing certificate, and the sample account
// sends as addr for ods.
func makePractice(t *testing.T, in *instance, ods, addr string) {
	t.Helper()
	ca, err := certs.LoadCA(in.path("ca"))
	if err != nil {
		t.Fatal(err)
	}
	issue := func(subject string) []byte {
		certPEM, keyPEM, err := ca.IssueSMIME(subject)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := certs.WritePair(in.path("keys", subject), certPEM, keyPEM); err != nil {
			t.Fatal(err)
		}
		cs, err := certs.ParseCertificates(certPEM)
		if err != nil {
			t.Fatal(err)
		}
		return cs[0].Raw
	}
	issue(ods)
	der := issue(addr)
	in.editDirectory(t, func(ctx context.Context, d *directory.Directory) {
		for _, old := range []string{sender, recipient} {
			e, err := d.Lookup(ctx, old)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Retire(ctx, e.ID, "hosted by the other relay in this test"); err != nil {
				t.Fatal(err)
			}
		}
		e, err := d.AddEndpoint(ctx, directory.Endpoint{Address: addr, ODS: ods,
			NextHop: directory.NextHop{Kind: directory.HopHosted}, Certificates: [][]byte{der}})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Attest(ctx, e.ID, "e2e: this relay's practice"); err != nil {
			t.Fatal(err)
		}
		acct, err := d.Account(ctx, account)
		if err != nil {
			t.Fatal(err)
		}
		acct.ODS, acct.Addresses = ods, []string{addr}
		if err := d.PutAccount(ctx, acct); err != nil {
			t.Fatal(err)
		}
	})
}

// run runs the instance's binary and returns its output; a failure fails
// the test with the output.
func (in *instance) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(in.bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: nhsrelay %s: %v\n%s", in.name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// sendAs submits one message over STARTTLS with AUTH PLAIN as the sample
// account with password pass, from from to to.
func sendAs(t *testing.T, in *instance, addr, pass, from, to, token string) {
	t.Helper()
	c, err := smtp.DialStartTLS(addr, in.tlsClient(t))
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", account, pass)); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	msg := "From: <" + from + ">\r\nTo: <" + to + ">\r\nSubject: Referral " + token + "\r\nMessage-ID: <" + token + "@nhs.example>\r\n" +
		"Date: " + time.Now().Format(time.RFC1123Z) + "\r\n\r\nClinical text " + token + "\r\n"
	if err := c.SendMail(from, []string{to}, strings.NewReader(msg)); err != nil {
		t.Fatalf("send %s → %s: %v", from, to, err)
	}
	c.Quit()
}
