//go:build linux

package smtpd

import (
	"context"
	"crypto/rand"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"nhsrelay/audit/audittest"
	"nhsrelay/directory"
	"nhsrelay/relay"
	"nhsrelay/relay/queue"
)

// NUL and other control characters in MAIL FROM and RCPT TO are refused
// with the reason, on MX and on submission, and nothing is queued;
// non-ASCII without SMTPUTF8 is refused as such, named, not echoed as
// spaces.
func TestAddressesWithControlOrNonASCIIRefused(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	mx := greeted(t, ts.mx)
	mx.want("EHLO client.example", "250 ")
	for _, tc := range []struct{ line, want string }{
		{"MAIL FROM:<ward7\x00@trust.nhs.example>", "501 5.1.7 sender address contains the control character NUL (0x00) at position 6"},
		{"MAIL FROM:<ward7\x01x@trust.nhs.example>", "501 5.1.7 "},
		{"MAIL FROM:<ward7\x7f@trust.nhs.example>", "501 5.1.7 sender address contains the control character DEL (0x7F)"},
		{"MAIL FROM:<wärd7@trust.nhs.example>", `553 5.6.7 sender address contains a non-ASCII character at position 2 ("\u00e4")`},
	} {
		if got := mx.cmd(tc.line); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%q → %q, want %q", tc.line, got, tc.want)
		}
	}
	mx.want("MAIL FROM:<ward7@trust.nhs.example>", "250 ")
	for _, tc := range []struct{ line, want string }{
		{"RCPT TO:<gp.a81001\x00@nhs.example>", "501 5.1.3 recipient address contains the control character NUL (0x00)"},
		{"RCPT TO:<gp.a81001@nhs.example\x1b>", "501 5.1.3 recipient address contains the control character ESC (0x1B)"},
		{"RCPT TO:<gp.a81001@nhs.éxample>", `553 5.6.7 recipient address contains a non-ASCII character at position 15 ("\u00e9")`},
	} {
		if got := mx.cmd(tc.line); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%q → %q, want %q", tc.line, got, tc.want)
		}
	}

	sub := ts.dialTLSRaw(t)
	sub.want("EHLO client.example", "250 ")
	sub.want("AUTH PLAIN "+plainIR(user, pass), "235 ")
	sub.want("MAIL FROM:<gp.a81001\x00@nhs.example>", "501 5.1.7 ")
	sub.want("MAIL FROM:<"+own+">", "250 ")
	sub.want("RCPT TO:<ward7@trust.nhs.exa\x00mple>", "501 5.1.3 ")
	if n := len(ts.queue.all()); n != 0 {
		t.Errorf("%d messages queued", n)
	}
}

// lookupDir adds the relay's Lookup to the test directory.
type lookupDir struct{ fakeDir }

func (d lookupDir) Lookup(ctx context.Context, addr string) (directory.Endpoint, error) {
	return d.CheckRecipient(ctx, addr)
}

// A full disk at intake is answered 452 4.3.1, never 250, and intake
// resumes by itself once there is space: the real relay's spool and queue
// on a small tmpfs that is filled and freed.
func TestDiskFullAtIntakeAnswers452ThenResumes(t *testing.T) {
	t.Parallel()
	disk := audittest.SmallDisk(t, 2<<20)
	st, err := queue.OpenBolt(filepath.Join(disk, "queue.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key := make([]byte, 32)
	rand.Read(key)
	r, err := relay.New(relay.Config{Hostname: "relay.nhs.example", SpoolDir: filepath.Join(disk, "spool"),
		SpoolKey: key, Store: st, Directory: lookupDir{}, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, func(c *Config) { c.Queue = r })
	c := ts.submitClient(t)
	if _, err := send(c, own, []string{remote}, message(own)); err != nil {
		t.Fatalf("send before the disk fills: %v", err)
	}

	free := audittest.Fill(t, disk)
	big := message(own) + strings.Repeat("Clinical letter text, line after line.\r\n", 3000) // a body file of its own
	_, err = send(c, own, []string{remote}, big)
	wantReply(t, err, 452, "4.3.1")
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	// Small bodies go into the open segment, whose last page may still
	// have room: each 250 must then be a message really stored, until 452.
	accepted := 1
	for i := 0; ; i++ {
		if i == 50 {
			t.Fatal("a full disk took 50 more small messages")
		}
		if _, err := send(c, own, []string{remote}, message(own)); err != nil {
			wantReply(t, err, 452, "4.3.1")
			break
		}
		accepted++
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	if msgs, _ := r.List(t.Context()); len(msgs) != accepted {
		t.Fatalf("queue holds %d messages while full, want the %d answered 250", len(msgs), accepted)
	}

	free()
	for _, body := range []string{message(own), big} {
		if _, err := send(c, own, []string{remote}, body); err != nil {
			t.Fatalf("send after space came back: %v", err)
		}
	}
	if msgs, _ := r.List(t.Context()); len(msgs) != accepted+2 {
		t.Fatalf("queue holds %d messages, want %d (%d before, 2 after the disk was full)", len(msgs), accepted+2, accepted)
	}
	if n := ts.counter(t, "nhsrelay_smtpd_rejected_total", "storage_full"); n != 2 {
		t.Errorf("storage_full refusals counted = %v, want 2", n)
	}
}
