package relay_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"nhsrelay/directory"
	"nhsrelay/relay"
	"nhsrelay/relay/dsn"
	"nhsrelay/relay/queue"
	"nhsrelay/relay/relaytest"
)

func TestDroppedConnectionIsReplaced(t *testing.T) {
	t.Parallel()
	sink, c := tlsSink(t)
	d := newDir()
	d.add("ward7@trust.nhs.example", directory.NextHop{Kind: directory.HopHost, Host: sink.Addr})
	e := start(t, d, func(cfg *relay.Config) { cfg.RootCAs = c.RootCAs })
	first := e.submit(t, sender, []string{"ward7@trust.nhs.example"}, message("one", "drop1"))
	// Gone from the queue, not just at the sink: the relay has read the
	// sink's reply and pooled the connection (a drop before that reply
	// would cost a retry, however fast the machine).
	e.waitGone(t, first)
	sink.DropConnections() // the idle connection in our pool is now dead
	id := e.submit(t, sender, []string{"ward7@trust.nhs.example"}, message("two", "drop2"))
	sink.WaitMessages(t, 2)
	e.waitGone(t, id)
	if got := sink.Connections(); got != 2 {
		t.Errorf("Connections = %d, want 2 (the dead one noticed by RSET and replaced)", got)
	}
	if v := e.metric(t, "nhsrelay_relay_deferred_total"); v != 0 {
		t.Errorf("deferred_total = %v: a dead pooled connection cost a retry", v)
	}
}

func TestPartialRecipientRefusal(t *testing.T) {
	t.Parallel()
	sink, c := tlsSink(t)
	sink.SetRcpt(func(to string) error {
		if strings.HasPrefix(to, "gone") {
			return relaytest.Reply(550, 1, 1, "no such mailbox")
		}
		return nil
	})
	d := newDir()
	for _, a := range []string{"ward7@trust.nhs.example", "gone@trust.nhs.example"} {
		d.add(a, directory.NextHop{Kind: directory.HopHost, Host: sink.Addr})
	}
	e := start(t, d, func(cfg *relay.Config) { cfg.RootCAs = c.RootCAs })
	id := e.submit(t, sender, []string{"gone@trust.nhs.example", "ward7@trust.nhs.example"}, message("referral", "part1"))
	msgs := sink.WaitMessages(t, 1)
	e.waitGone(t, id)
	if to := msgs[0].To; len(to) != 1 || to[0] != "ward7@trust.nhs.example" {
		t.Errorf("sink delivered to %v, want only ward7", to)
	}
	rep := parseDSN(t, e.waitMailbox(t, sender, 1)[0])
	if len(rep.Recipients) != 1 || rep.Recipients[0].FinalRecipient != "gone@trust.nhs.example" || rep.Recipients[0].Status != "5.1.1" {
		t.Errorf("DSN recipients = %+v, want only gone@ with 5.1.1", rep.Recipients)
	}
}

func TestRecipientNoLongerInDirectoryBounces(t *testing.T) {
	t.Parallel()
	e := start(t, newDir(), nil)
	id := e.submit(t, sender, []string{"closed@practice.nhs.example"}, message("referral", "gone2"))
	e.waitGone(t, id)
	rep := parseDSN(t, e.waitMailbox(t, sender, 1)[0])
	if rc := rep.Recipients[0]; rc.Action != dsn.Failed || rc.Status != "5.1.1" || !strings.Contains(rc.Diagnostic, "no verified NHS endpoint") {
		t.Errorf("DSN recipient = %+v", rc)
	}
}

// prefixSealer stands in for S/MIME: what leaves must be what it wrote.
type prefixSealer struct{}

func (prefixSealer) Seal(_ context.Context, _ queue.Message, _ []directory.Endpoint, body io.Reader, w io.Writer) error {
	if _, err := io.WriteString(w, "X-Sealed: yes\r\n"); err != nil {
		return err
	}
	_, err := io.Copy(w, body)
	return err
}

func TestSealerOutputIsWhatLeaves(t *testing.T) {
	t.Parallel()
	sink, c := tlsSink(t)
	d := newDir()
	d.add("ward7@trust.nhs.example", directory.NextHop{Kind: directory.HopHost, Host: sink.Addr})
	e := start(t, d, func(cfg *relay.Config) { cfg.RootCAs = c.RootCAs; cfg.Sealer = prefixSealer{} })
	body := message("referral", "seal1")
	e.submit(t, sender, []string{"ward7@trust.nhs.example"}, body)
	if got := string(sink.WaitMessages(t, 1)[0].Data); got != "X-Sealed: yes\r\n"+body {
		t.Errorf("sink got %q, want the sealer's output", got)
	}
}

// Run, cancelled while a delivery is in flight, lets it finish and record
// its outcome before returning.
func TestRunFinishesInFlightOnCancel(t *testing.T) {
	t.Parallel()
	sink, c := tlsSink(t)
	inData := make(chan struct{})
	release := make(chan struct{})
	sink.SetData(func(string, []string, []byte) error {
		close(inData)
		<-release
		return nil
	})
	d := newDir()
	d.add("ward7@trust.nhs.example", directory.NextHop{Kind: directory.HopHost, Host: sink.Addr})
	tmp := t.TempDir()
	st := openStore(t, filepath.Join(tmp, "queue.db"))
	r, err := relay.New(relay.Config{
		Hostname: "relay.nhs.example", SpoolDir: filepath.Join(tmp, "spool"), SpoolKey: spoolKey(t),
		Store: st, Directory: d, RootCAs: c.RootCAs, Now: newClock().Now,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)), Metrics: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	id, err := r.Submit(t.Context(), relay.Envelope{From: sender, Recipients: []string{"ward7@trust.nhs.example"}},
		strings.NewReader(message("referral", "inflight")))
	if err != nil {
		t.Fatal(err)
	}
	<-inData
	cancel()
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil after cancel", err)
	}
	if _, err := r.Get(t.Context(), id); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("after Run returned, the in-flight message is still queued (err %v): its outcome was not recorded", err)
	}
	if n := len(sink.Messages()); n != 1 {
		t.Errorf("sink has %d messages, want 1", n)
	}
}

func TestNewRejectsIncompleteConfig(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	good := relay.Config{Hostname: "relay.nhs.example", SpoolDir: filepath.Join(tmp, "spool"), SpoolKey: spoolKey(t),
		Store: openStore(t, filepath.Join(tmp, "q.db")), Directory: newDir()}
	for name, edit := range map[string]func(*relay.Config){
		"no hostname":       func(c *relay.Config) { c.Hostname = "" },
		"no spool":          func(c *relay.Config) { c.SpoolDir = "" },
		"no store":          func(c *relay.Config) { c.Store = nil },
		"no directory":      func(c *relay.Config) { c.Directory = nil },
		"retry max < min":   func(c *relay.Config) { c.RetryMin, c.RetryMax = 2*3600e9, 3600e9 },
		"short spool key":   func(c *relay.Config) { c.SpoolKey = []byte("short") },
		"metrics twice reg": nil,
	} {
		t.Run(name, func(t *testing.T) {
			cfg := good
			if edit == nil {
				reg := prometheus.NewRegistry()
				cfg.Metrics = reg
				if _, err := relay.New(cfg); err != nil {
					t.Fatalf("first New: %v", err)
				}
			} else {
				edit(&cfg)
			}
			if _, err := relay.New(cfg); err == nil {
				t.Errorf("New accepted a config with %s", name)
			}
		})
	}
}

// A crash after the Maildir delivery but before the queue recorded it
// leaves the record queued; the repeated attempt must not deliver twice.
func TestMaildirRedeliveryAfterCrashIsIdempotent(t *testing.T) {
	t.Parallel()
	d := newDir()
	d.add("ward7@hosted.nhs.example", directory.NextHop{Kind: directory.HopHosted})
	e := start(t, d, nil)
	body := message("referral", "once")
	id := e.submit(t, sender, []string{"ward7@hosted.nhs.example"}, body)
	e.waitGone(t, id)
	e.waitMailbox(t, "ward7@hosted.nhs.example", 1)

	// Put back what the crash would have left: the body and a queued record.
	sp := relay.Spool(e.r)
	waitFor(t, "the body to leave the spool", func() bool {
		ids, _ := sp.IDs()
		return !slices.Contains(ids, id)
	})
	if _, err := sp.Write(id, strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	if err := e.cfg.Store.Add(t.Context(), queue.Message{ID: id, From: sender, Received: now,
		Recipients: []queue.Recipient{{Address: "ward7@hosted.nhs.example", State: queue.Queued, NextAttempt: now}}}); err != nil {
		t.Fatal(err)
	}
	if err := e.r.Retry(t.Context(), id); err != nil { // as recovery schedules it on restart
		t.Fatal(err)
	}
	e.waitGone(t, id)
	if got := e.mailbox(t, "ward7@hosted.nhs.example"); len(got) != 1 {
		t.Errorf("mailbox has %d messages after the repeated attempt, want 1", len(got))
	}
}
