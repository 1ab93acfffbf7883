package relay_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"nhsrelay/directory"
	"nhsrelay/relay"
	"nhsrelay/relay/maildir"
	"nhsrelay/relay/queue"
	"nhsrelay/relay/spool"
)

// logRecords is a slog.Handler that keeps the records with one message
// and passes everything on to the test's output.
type logRecords struct {
	msg  string
	next slog.Handler
	mu   *sync.Mutex
	recs *[]slog.Record
}

func newLogRecords(t testing.TB, msg string) *logRecords {
	return &logRecords{msg: msg, next: slog.NewTextHandler(t.Output(), nil), mu: &sync.Mutex{}, recs: &[]slog.Record{}}
}

func (h *logRecords) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }
func (h *logRecords) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Message == h.msg {
		h.mu.Lock()
		*h.recs = append(*h.recs, rec.Clone())
		h.mu.Unlock()
	}
	return h.next.Handle(ctx, rec)
}
func (h *logRecords) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	return &c
}
func (h *logRecords) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}

// wait waits for n records and returns them all.
func (h *logRecords) wait(t testing.TB, n int) []slog.Record {
	t.Helper()
	var out []slog.Record
	waitFor(t, "log record "+h.msg, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		out = append(out[:0], *h.recs...)
		return len(out) >= n
	})
	return out
}

// attr returns rec's attribute key.
func attr(rec slog.Record, key string) slog.Value {
	var v slog.Value
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value
		}
		return true
	})
	return v
}

// Delivered markers are pruned at start-up, after recovery, and then once
// a day by the configured clock, by maildir.Prune's rule: a marker older
// than the oldest queued message (less a day's margin) goes, and one that
// message might still need stays even when it is older than
// now − GiveUpAfter (the relay was down for days); once that message has
// left the queue, its markers go at the next daily prune.
func TestMaildirMarkersPrunedDaily(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	c := newClock()
	t0 := c.Now()
	key := spoolKey(t)
	spoolDir, root := filepath.Join(tmp, "spool"), filepath.Join(tmp, "mail")

	// A message received ten days ago, left queued while the relay was
	// down: its give-up time has passed, but it has not been given up.
	sp, err := spool.Open(spoolDir, key)
	if err != nil {
		t.Fatal(err)
	}
	id := relay.NewID()
	if _, err := sp.Write(id, strings.NewReader(message("referral", "prune1"))); err != nil {
		t.Fatal(err)
	}
	st := openStore(t, filepath.Join(tmp, "queue.db"))
	received := t0.Add(-10 * 24 * time.Hour)
	if err := st.Add(t.Context(), queue.Message{ID: id, From: "", Received: received, // null sender: no DSN
		Recipients: []queue.Recipient{{Address: "gone@nowhere.nhs.example", State: queue.Queued, NextAttempt: received}}}); err != nil {
		t.Fatal(err)
	}

	const box = "labs@hosted.nhs.example"
	marker := func(name string, mtime time.Time) string {
		t.Helper()
		if err := maildir.Deliver(filepath.Join(root, box), name, strings.NewReader("Subject: x\r\n\r\nx\r\n")); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, maildir.MarkerFolder, box, name)
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stale := marker("stale", received.Add(-20*24*time.Hour))
	margin := marker("margin", received.Add(-12*time.Hour)) // before the oldest message, within the day's margin
	needed := marker("needed", received.Add(time.Hour))     // older than now − GiveUpAfter − 24h

	logs := newLogRecords(t, "Maildir delivered markers pruned")
	e := start(t, newDir(), func(cfg *relay.Config) {
		cfg.SpoolDir, cfg.SpoolKey, cfg.Store, cfg.MaildirRoot = spoolDir, key, st, root
		cfg.Now, cfg.Logger = c.Now, slog.New(logs)
	})
	exists := func(p string) bool {
		_, err := os.Stat(p)
		return err == nil
	}

	// At start-up: cutoff = min(received, now − 5 days) − 24h.
	recs := logs.wait(t, 1)
	if n, cut := attr(recs[0], "removed").Int64(), attr(recs[0], "cutoff").Time(); n != 1 || !cut.Equal(received.Add(-24*time.Hour)) {
		t.Errorf("start-up prune removed %d markers before %v, want 1 before %v", n, cut, received.Add(-24*time.Hour))
	}
	if exists(stale) || !exists(margin) || !exists(needed) {
		t.Errorf("after the start-up prune: stale %v, margin %v, needed %v; want only stale gone",
			exists(stale), exists(margin), exists(needed))
	}

	// The message is given up (5.1.1, no DSN for a null sender) and leaves.
	e.waitGone(t, id)
	// 23 hours on, the loop wakes for another message: no prune yet.
	c.Advance(23 * time.Hour)
	e.waitGone(t, e.submit(t, "", []string{"gone@nowhere.nhs.example"}, message("referral", "prune2")))
	// A day after the first, the next prune: the queue is empty, so
	// cutoff = now − 5 days − 24h.
	c.Advance(2 * time.Hour)
	e.r.Kick()
	recs = logs.wait(t, 2)
	want := c.Now().Add(-6 * 24 * time.Hour)
	if n, cut := attr(recs[1], "removed").Int64(), attr(recs[1], "cutoff").Time(); len(recs) != 2 || n != 2 || !cut.Equal(want) {
		t.Errorf("second prune (of %d) removed %d markers before %v, want 2 before %v: one prune a day", len(recs), n, cut, want)
	}
	if exists(margin) || exists(needed) {
		t.Errorf("after the daily prune with an empty queue: margin %v, needed %v; want both gone", exists(margin), exists(needed))
	}
}

// A prune that fails is logged and delivery goes on.
func TestMarkerPruneFailureIsNotFatal(t *testing.T) {
	t.Parallel()
	sink, c := tlsSink(t)
	root := filepath.Join(t.TempDir(), "mail")
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	// The marker folder is a file: listing it fails.
	if err := os.WriteFile(filepath.Join(root, maildir.MarkerFolder), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	logs := newLogRecords(t, "prune Maildir delivered markers")
	d := newDir()
	d.add("ward7@trust.nhs.example", directory.NextHop{Kind: directory.HopHost, Host: sink.Addr})
	e := start(t, d, func(cfg *relay.Config) {
		cfg.RootCAs, cfg.MaildirRoot, cfg.Logger = c.RootCAs, root, slog.New(logs)
	})
	logs.wait(t, 1)
	id := e.submit(t, sender, []string{"ward7@trust.nhs.example"}, message("referral", "prunefail"))
	sink.WaitMessages(t, 1)
	e.waitGone(t, id)
}
