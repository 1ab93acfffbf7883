package smtpd

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"nhsrelay/audit"
)

// fakeAudit records events in memory. down is what Err reports (and Record
// fails with); recErr makes Record fail while Err still says all is well —
// the log breaking between smtpd's check and its record.
type fakeAudit struct {
	mu     sync.Mutex
	events []audit.Event
	down   error
	recErr error
}

func (f *fakeAudit) Record(ev audit.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down != nil {
		return f.down
	}
	if f.recErr != nil {
		return f.recErr
	}
	f.events = append(f.events, ev)
	return nil
}

func (f *fakeAudit) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.down
}

func (f *fakeAudit) set(down, recErr error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down, f.recErr = down, recErr
}

func (f *fakeAudit) accepted() []audit.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []audit.Event
	for _, ev := range f.events {
		if ev.Action == "smtp.accepted" {
			out = append(out, ev)
		}
	}
	return out
}

var _ auditHealth = (*fakeAudit)(nil)

const auditFault = "audit: fsync /var/lib/nhsrelay/audit.log: input/output error"

// wantAuditRefusal checks a 451 4.3.0 that says what to do and leaks nothing.
func wantAuditRefusal(t *testing.T, err error) {
	t.Helper()
	se := wantReply(t, err, 451, "4.3.0")
	if strings.Contains(se.Message, "/var") || strings.Contains(se.Message, "fsync") {
		t.Errorf("internal text leaked: %q", se.Message)
	}
	if !strings.Contains(se.Message, "try again later") || !strings.Contains(se.Message, "quote ") {
		t.Errorf("reply %q does not say what to do", se.Message)
	}
}

// TestAuditDownRefusesMail: while the audit log is broken no message is
// taken on, on any listener; when it is back, mail flows and is audited.
func TestAuditDownRefusesMail(t *testing.T) {
	t.Parallel()
	fa := &fakeAudit{}
	ts := startServer(t, func(c *Config) { c.Audit = fa })
	fa.set(errors.New(auditFault), nil)

	c := ts.submitClient(t)
	wantAuditRefusal(t, c.Mail(own, nil))
	mx, err := smtp.Dial(ts.mx)
	if err != nil {
		t.Fatal(err)
	}
	defer mx.Close()
	wantAuditRefusal(t, mx.Mail("a@b.example", nil))

	fa.set(nil, nil)
	if _, err := send(c, own, []string{remote, hosted}, message(own)); err != nil {
		t.Fatalf("send once the audit log is back: %v", err)
	}
	if n := len(ts.queue.all()); n != 1 {
		t.Fatalf("queued %d, want 1", n)
	}
	evs := fa.accepted()
	if len(evs) != 2 || evs[0].QueueID != "Q0001" || evs[0].Actor != user {
		t.Fatalf("accepted events = %+v, want two for Q0001 by %s", evs, user)
	}
	if got := evs[0].Endpoint + " " + evs[1].Endpoint; got != remote+" "+hosted && got != hosted+" "+remote {
		t.Errorf("accepted events name %s, want one per recipient", got)
	}
}

// TestAuditDownBeforeData: the log breaking during a transaction stops it
// before anything is queued.
func TestAuditDownBeforeData(t *testing.T) {
	t.Parallel()
	fa := &fakeAudit{}
	ts := startServer(t, func(c *Config) { c.Audit = fa })
	c := ts.submitClient(t)
	if err := c.Mail(own, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(remote, nil); err != nil {
		t.Fatal(err)
	}
	fa.set(errors.New(auditFault), nil)
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(message(own)))
	wantAuditRefusal(t, w.Close())
	if n := len(ts.queue.all()); n != 0 {
		t.Errorf("queued %d while the audit log was down", n)
	}

	// The same through BDAT: the first chunk is refused.
	rc := ts.submitRaw(t)
	rc.want("MAIL FROM:<"+own+">", "451 4.3.0 ")
	fa.set(nil, nil)
	rc.want("MAIL FROM:<"+own+">", "250 ")
	rc.want("RCPT TO:<"+remote+">", "250 ")
	fa.set(errors.New(auditFault), nil)
	if got := rc.bdat(message(own), 10); !strings.HasPrefix(got, "451 4.3.0 ") {
		t.Fatalf("BDAT while the audit log is down: %q, want 451 4.3.0", got)
	}
	if n := len(ts.queue.all()); n != 0 {
		t.Errorf("queued %d while the audit log was down", n)
	}
}

// TestAuditClosedLogRefusesMail: the real audit.Log, once stopped, is seen
// as down (its Err), so smtpd refuses rather than accept unaudited mail.
func TestAuditClosedLogRefusesMail(t *testing.T) {
	t.Parallel()
	l, err := audit.Open(filepath.Join(t.TempDir(), "audit.log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, func(c *Config) { c.Audit = l })
	c := ts.submitClient(t)
	l.Close()
	wantAuditRefusal(t, c.Mail(own, nil))
}

// TestAuditFailsAfterQueue: if the record of an acceptance fails after the
// message is durably queued, the client still gets 250 (a 451 would make
// it send the message twice); the failure is counted for the operator.
func TestAuditFailsAfterQueue(t *testing.T) {
	t.Parallel()
	fa := &fakeAudit{}
	ts := startServer(t, func(c *Config) { c.Audit = fa })
	fa.set(nil, errors.New(auditFault))
	c := ts.submitClient(t)
	if _, err := send(c, own, []string{remote}, message(own)); err != nil {
		t.Fatalf("send: %v", err)
	}
	if n := len(ts.queue.all()); n != 1 {
		t.Errorf("queued %d, want 1", n)
	}
	if n := ts.counter(t, "nhsrelay_smtpd_audit_failures_total", ""); n != 1 {
		t.Errorf("audit failures counted = %v, want 1", n)
	}
}

// TestAcceptedAuditManyRecipients: a message to 1000 recipients with long
// addresses (80 KB of addresses, more than an audit record may hold) is
// audited in full, one smtp.accepted record per recipient, in a chain
// that verifies.
func TestAcceptedAuditManyRecipients(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ts := startServer(t, func(c *Config) { c.Audit = l })
	rcpts := make([]string, DefaultMaxRecipients)
	for i := range rcpts {
		rcpts[i] = fmt.Sprintf("clinic-%04d-%s@%s", i, strings.Repeat("x", 52), bulkDomain) // 64-octet local part
	}
	c := ts.submitClient(t)
	if _, err := send(c, own, rcpts, message(own)); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(path); err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev audit.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Action == "smtp.accepted" && ev.QueueID == "Q0001" && ev.Actor == user {
			seen[ev.Endpoint] = true
		}
	}
	for _, r := range rcpts {
		if !seen[r] {
			t.Fatalf("no smtp.accepted record for %s (%d of %d recorded)", r, len(seen), len(rcpts))
		}
	}
	if n := ts.counter(t, "nhsrelay_smtpd_audit_failures_total", ""); n != 0 {
		t.Errorf("audit failures counted = %v, want 0", n)
	}
}
