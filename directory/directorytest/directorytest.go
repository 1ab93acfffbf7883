package directorytest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"nhsrelay/audit"
	"nhsrelay/directory"
	"nhsrelay/directory/boltstore"
)

// ODS is the organisation test endpoints belong to unless they name another.
const ODS = "A81001"

// Verified returns a verified endpoint for addr (a mailbox or a domain)
// owned by ODS, delivered by hop, with a verification that lasts a year.
func Verified(addr string, hop directory.NextHop) directory.Endpoint {
	now := time.Now()
	return directory.Endpoint{
		Address: addr, ODS: ODS, Purpose: directory.PurposeGeneral, NextHop: hop,
		Status: directory.StatusVerified,
		Verification: directory.Verification{By: "directorytest", At: now,
			Method: directory.MethodAttestation, Evidence: "test fixture",
			Expires: now.Add(directory.DefaultReverifyAfter)},
	}
}

// Pending returns a pending endpoint for addr owned by ODS, delivered by MX.
func Pending(addr string) directory.Endpoint {
	return directory.Endpoint{Address: addr, ODS: ODS, Purpose: directory.PurposeGeneral,
		NextHop: directory.NextHop{Kind: directory.HopMX}, Status: directory.StatusPending}
}

// Suspended returns a suspended endpoint for addr with reason.
func Suspended(addr, reason string) directory.Endpoint {
	e := Pending(addr)
	e.Status, e.StatusReason = directory.StatusSuspended, reason
	return e
}

// New returns a directory over a fresh bbolt store holding eps (IDs are
// assigned where empty) and an active organisation for every ODS code they
// name. It has no Mailer or Audit; use Open for those.
func New(t testing.TB, eps ...directory.Endpoint) *directory.Directory {
	t.Helper()
	return Open(t, nil, eps...)
}

// Open is New with cfg edited by edit before the directory opens (set
// Mailer, Audit, Now...). cfg.Store is already set, and HashCost is
// bcrypt.MinCost to keep tests fast.
func Open(t testing.TB, edit func(*directory.Config), eps ...directory.Endpoint) *directory.Directory {
	t.Helper()
	st := NewStore(t)
	Seed(t, st, eps...)
	cfg := directory.Config{Store: st, HashCost: bcrypt.MinCost}
	if edit != nil {
		edit(&cfg)
	}
	d, err := directory.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("directorytest: open: %v", err)
	}
	return d
}

// NewStore opens an empty bbolt store in t.TempDir(), closed by t.Cleanup.
func NewStore(t testing.TB) *boltstore.Store {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "directory.db"))
	if err != nil {
		t.Fatalf("directorytest: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("directorytest: %v", err)
		}
	})
	return st
}

// Seed writes eps, and an active organisation for each ODS code they name,
// straight into st, bypassing validation and the pending-first rule.
func Seed(t testing.TB, st directory.Store, eps ...directory.Endpoint) {
	t.Helper()
	var b directory.Batch
	seen := map[string]bool{}
	for i, e := range eps {
		if e.ODS == "" {
			e.ODS = ODS
		}
		if e.ID == "" {
			e.ID = fmt.Sprintf("ep-test-%d", i+1)
		}
		if e.NextHop.Kind == "" {
			e.NextHop.Kind = directory.HopMX
		}
		if !seen[e.ODS] {
			seen[e.ODS] = true
			b.Organisations = append(b.Organisations, directory.Organisation{ODS: e.ODS,
				Name: "Test Practice " + e.ODS, Status: directory.OrgActive,
				Kind: "gp-practice", Source: directory.SourceAdmin})
		}
		b.Endpoints = append(b.Endpoints, e)
	}
	if err := st.Apply(context.Background(), b); err != nil {
		t.Fatalf("directorytest: seed: %v", err)
	}
}

// Account creates an account user with password pass (at least
// directory.MinPasswordLength characters) owning addrs. An account may own
// only endpoints of its organisation, so an address the directory does not
// know yet is first added as a pending hosted endpoint of ODS (and ODS as
// an organisation, if it is missing).
func Account(t testing.TB, d *directory.Directory, user, pass string, addrs ...string) directory.Account {
	t.Helper()
	h, err := directory.HashPasswordCost(pass, bcrypt.MinCost)
	if err != nil {
		t.Fatalf("directorytest: %v", err)
	}
	ctx := audit.WithActor(context.Background(), "directorytest")
	for _, addr := range addrs {
		if _, err := d.Lookup(ctx, addr); err == nil {
			continue
		}
		if _, err := d.Organisation(ctx, ODS); err != nil {
			if err := d.PutOrganisation(ctx, directory.Organisation{ODS: ODS, Name: "Test Practice " + ODS,
				Kind: "gp-practice"}); err != nil {
				t.Fatalf("directorytest: organisation for account: %v", err)
			}
		}
		if _, err := d.AddEndpoint(ctx, directory.Endpoint{Address: addr, ODS: ODS,
			NextHop: directory.NextHop{Kind: directory.HopHosted}}); err != nil {
			t.Fatalf("directorytest: endpoint %s for account: %v", addr, err)
		}
	}
	a := directory.Account{Username: user, PasswordHash: h, Addresses: addrs}
	if err := d.PutAccount(context.Background(), a); err != nil {
		t.Fatalf("directorytest: put account: %v", err)
	}
	got, err := d.Account(context.Background(), user)
	if err != nil {
		t.Fatalf("directorytest: %v", err)
	}
	return got
}

// Mail is one message a Mailer was asked to send.
type Mail struct {
	From string
	To   []string
	Data []byte
}

// Mailer records what it is asked to send. Err, if set, is returned instead.
type Mailer struct {
	mu   sync.Mutex
	sent []Mail
	Err  error
}

// Send implements directory.Mailer.
func (m *Mailer) Send(ctx context.Context, from string, to []string, msg io.Reader) error {
	data, err := io.ReadAll(msg)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Err != nil {
		return m.Err
	}
	m.sent = append(m.sent, Mail{From: from, To: append([]string(nil), to...), Data: data})
	return nil
}

// Sent returns a copy of what was sent so far.
func (m *Mailer) Sent() []Mail {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Mail(nil), m.sent...)
}

// AuditLog records audit events in memory.
type AuditLog struct {
	mu     sync.Mutex
	events []audit.Event
}

// Record implements audit.Recorder.
func (l *AuditLog) Record(ev audit.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, ev)
	return nil
}

// Events returns a copy of the events so far.
func (l *AuditLog) Events() []audit.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]audit.Event(nil), l.events...)
}

// Find returns the events whose Action is action, in order.
func (l *AuditLog) Find(action string) []audit.Event {
	var out []audit.Event
	for _, ev := range l.Events() {
		if ev.Action == action {
			out = append(out, ev)
		}
	}
	return out
}

// Actions returns the Action of each event, in order.
func (l *AuditLog) Actions() []string {
	var out []string
	for _, ev := range l.Events() {
		out = append(out, ev.Action)
	}
	return out
}

// Clock is a settable clock for Config.Now.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Code pulls the verification code out of a challenge mail: the text on
// the line after "Verification code:".
func Code(m Mail) string {
	for line := range strings.SplitSeq(string(bytes.ReplaceAll(m.Data, []byte("\r\n"), []byte("\n"))), "\n") {
		if c, ok := strings.CutPrefix(line, "Verification code: "); ok {
			return strings.TrimSpace(c)
		}
	}
	return ""
}
