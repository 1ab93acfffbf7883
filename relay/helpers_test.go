package relay_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"nhsrelay/directory"
	"nhsrelay/relay"
	"nhsrelay/relay/dsn"
	"nhsrelay/relay/queue"
)

const sender = "gp.a81001@practice.nhs.example" // hosted here: DSNs land in its Maildir

// clock is a fake time source tests advance, then Kick.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// dir is a fake directory: address (lower case) → endpoint.
type dir struct {
	mu  sync.Mutex
	eps map[string]directory.Endpoint
}

func newDir() *dir {
	d := &dir{eps: map[string]directory.Endpoint{}}
	d.add(sender, directory.NextHop{Kind: directory.HopHosted})
	return d
}

func (d *dir) add(addr string, hop directory.NextHop) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.eps[strings.ToLower(addr)] = directory.Endpoint{ID: "ep-" + addr, Address: addr, NextHop: hop, Status: directory.StatusVerified}
}

// CheckRecipient is the fake's policy: verified endpoints only, no
// redirects (tests of redirects use the real directory).
func (d *dir) CheckRecipient(ctx context.Context, addr string) (directory.Endpoint, error) {
	ep, err := d.Lookup(ctx, addr)
	if err != nil {
		return directory.Endpoint{}, err
	}
	if ep.Status != directory.StatusVerified {
		return directory.Endpoint{}, &directory.NotVerifiedError{Address: addr, Status: ep.Status, Reason: string(ep.Status)}
	}
	return ep, nil
}

func (d *dir) Lookup(_ context.Context, addr string) (directory.Endpoint, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if ep, ok := d.eps[strings.ToLower(addr)]; ok {
		return ep, nil
	}
	return directory.Endpoint{}, fmt.Errorf("lookup %s: %w", addr, directory.ErrNotFound)
}

type env struct {
	r     *relay.Relay
	cfg   relay.Config
	clock *clock
	reg   *prometheus.Registry
}

func spoolKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

func openStore(t testing.TB, path string) *queue.BoltStore {
	t.Helper()
	st, err := queue.OpenBolt(path)
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// start runs a relay with a real encrypted spool, a real bbolt store and a
// fake clock until the test ends.
func start(t testing.TB, d relay.Directory, edit func(*relay.Config)) *env {
	t.Helper()
	e := newEnv(t, d, edit)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return e
}

// newEnv is start without Run: nothing is delivered unless the test runs
// an attempt itself (relay.Attempt), on a context it controls.
func newEnv(t testing.TB, d relay.Directory, edit func(*relay.Config)) *env {
	t.Helper()
	tmp := t.TempDir()
	c := newClock()
	reg := prometheus.NewRegistry()
	cfg := relay.Config{
		Hostname:    "relay.nhs.example",
		SpoolDir:    filepath.Join(tmp, "spool"),
		SpoolKey:    spoolKey(t),
		Store:       openStore(t, filepath.Join(tmp, "queue.db")),
		Directory:   d,
		MaildirRoot: filepath.Join(tmp, "mail"),
		Now:         c.Now,
		Logger:      slog.New(slog.NewTextHandler(t.Output(), nil)),
		Metrics:     reg,
		IdleTimeout: time.Minute,
	}
	if edit != nil {
		edit(&cfg)
	}
	r, err := relay.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &env{r: r, cfg: cfg, clock: c, reg: reg}
}

func message(subject, token string) string {
	return "From: <" + sender + ">\r\nTo: <ward7@trust.nhs.example>\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + token + "@practice.nhs.example>\r\n\r\nClinical body " + token + "\r\n"
}

func (e *env) submit(t testing.TB, from string, to []string, body string) string {
	t.Helper()
	id, err := e.r.Submit(t.Context(), relay.Envelope{From: from, Recipients: to, Account: "gp"}, strings.NewReader(body))
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	return id
}

// waitFor polls cond until it holds or a bounded deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitGone waits until id has left the queue.
func (e *env) waitGone(t testing.TB, id string) {
	t.Helper()
	waitFor(t, "message "+id+" to leave the queue", func() bool {
		_, err := e.r.Get(t.Context(), id)
		return errors.Is(err, queue.ErrNotFound)
	})
}

// waitAttempts waits until id's first recipient has had n attempts.
func (e *env) waitAttempts(t testing.TB, id string, n int) queue.Message {
	t.Helper()
	var m queue.Message
	waitFor(t, fmt.Sprintf("%d attempts of %s", n, id), func() bool {
		var err error
		m, err = e.r.Get(t.Context(), id)
		return err == nil && m.Recipients[0].Attempts >= n
	})
	return m
}

// mailbox lists the files delivered to addr's Maildir (new/).
func (e *env) mailbox(t testing.TB, addr string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(e.cfg.MaildirRoot, strings.ToLower(addr), "new"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, en := range entries {
		out = append(out, filepath.Join(e.cfg.MaildirRoot, strings.ToLower(addr), "new", en.Name()))
	}
	return out
}

// waitMailbox waits until addr's Maildir holds n messages and returns them.
func (e *env) waitMailbox(t testing.TB, addr string, n int) [][]byte {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d messages in %s", n, addr), func() bool { return len(e.mailbox(t, addr)) >= n })
	var out [][]byte
	for _, p := range e.mailbox(t, addr) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// parseDSN parses a DSN delivered to a Maildir (after our trace fields).
func parseDSN(t testing.TB, raw []byte) *dsn.Report {
	t.Helper()
	rep, err := dsn.Parse(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatalf("dsn.Parse: %v\n%s", err, raw)
	}
	return rep
}

// metric returns the value of a counter or gauge (summed over labels).
func (e *env) metric(t testing.TB, name string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += value(m)
		}
	}
	return sum
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}
