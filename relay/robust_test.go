package relay_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"nhsrelay/audit"
	"nhsrelay/certs/certstest"
	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
	"nhsrelay/relay"
	"nhsrelay/relay/queue"
	"nhsrelay/relay/relaytest"
)

// One hop outlives the attempt's context while another delivers: the
// delivered recipient is recorded Delivered (on a context detached from
// the attempt's), and is never sent again.
//
// Nothing here depends on how fast the machine is: the test runs the
// attempt itself on a context it cancels only once the healthy hop's copy
// is in its mailbox (a hosted delivery does not use the attempt's context),
// and the stuck hop answers nothing until then.
func TestExpiredAttemptStillRecordsDelivered(t *testing.T) {
	t.Parallel()
	const healthy, stuck = "ward7@hosted.nhs.example", "slow@stuck.nhs.example"
	d := newDir()
	d.add(healthy, hostedHop)
	d.add(stuck, directory.NextHop{Kind: directory.HopHost, Host: "stuck.nhs.example:25"})
	var dials atomic.Int32
	e := newEnv(t, d, func(cfg *relay.Config) {
		cfg.Dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
			if dials.Add(1) == 1 {
				<-ctx.Done() // the first attempt gets no answer while it lasts
				return nil, ctx.Err()
			}
			return nil, errors.New("connection refused")
		}
	})
	id := e.submit(t, sender, []string{healthy, stuck}, message("referral", "expired1"))

	actx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		relay.Attempt(e.r, actx, id)
	}()
	e.waitMailbox(t, healthy, 1)
	cancel() // the attempt runs out while the stuck hop is still dialling
	<-done

	m, err := e.r.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get after the attempt: %v", err)
	}
	if rc := m.Recipients[0]; rc.State != queue.Delivered || rc.Attempts != 1 {
		t.Errorf("delivered recipient recorded as %+v, want delivered after 1 attempt", rc)
	}
	if rc := m.Recipients[1]; rc.State != queue.Queued || rc.Attempts != 1 || !rc.NextAttempt.After(e.clock.Now()) {
		t.Errorf("timed-out recipient recorded as %+v, want queued after 1 attempt with a later next attempt", rc)
	}
	// The retry goes to the stuck hop only.
	e.clock.Advance(2 * time.Hour)
	relay.Attempt(e.r, t.Context(), id)
	if m, err := e.r.Get(t.Context(), id); err != nil || m.Recipients[1].Attempts != 2 {
		t.Errorf("after the retry: %+v, %v; want the stuck recipient tried twice", m.Recipients, err)
	}
	if n := len(e.mailbox(t, healthy)); n != 1 {
		t.Errorf("the delivered recipient's mailbox holds %d copies, want 1", n)
	}
	if v := e.metric(t, "nhsrelay_relay_delivered_total"); v != 1 {
		t.Errorf("delivered_total = %v, want 1", v)
	}
}

// Run bounds each attempt by AttemptTimeout: the context a hop dials with
// has that deadline. (The deadline is read, never waited for.)
func TestAttemptHasDeadline(t *testing.T) {
	t.Parallel()
	d := newDir()
	d.add("ward7@trust.nhs.example", directory.NextHop{Kind: directory.HopHost, Host: "trust.nhs.example:25"})
	type seen struct {
		deadline, at time.Time
		ok           bool
	}
	dialled := make(chan seen, 1)
	e := start(t, d, func(cfg *relay.Config) {
		cfg.AttemptTimeout = time.Hour
		cfg.Dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
			dl, ok := ctx.Deadline()
			select {
			case dialled <- seen{deadline: dl, ok: ok, at: time.Now()}:
			default:
			}
			return nil, errors.New("connection refused")
		}
	})
	before := time.Now()
	e.submit(t, sender, []string{"ward7@trust.nhs.example"}, message("referral", "deadline1"))
	var got seen
	select {
	case got = <-dialled:
	case <-time.After(20 * time.Second): // waitFor's bound
		t.Fatal("timed out waiting for the delivery attempt to dial")
	}
	if !got.ok || got.deadline.Before(before.Add(time.Hour)) || got.deadline.After(got.at.Add(time.Hour)) {
		t.Errorf("dial context deadline = %v (set %v), want AttemptTimeout (1h) after the attempt started, between %v and %v",
			got.deadline, got.ok, before.Add(time.Hour), got.at.Add(time.Hour))
	}
}

// A domain endpoint hosted here has one mailbox, named by the domain:
// addresses made up on port 25 create no folders, and one message reaches
// the mailbox once however many of its addresses it names.
func TestDomainEndpointHasOneMailbox(t *testing.T) {
	t.Parallel()
	d := directorytest.New(t, directorytest.Verified(sender, hostedHop),
		directorytest.Verified("hosted.nhs.example", hostedHop))
	e := start(t, d, nil)
	id := e.submit(t, sender, []string{"a@hosted.nhs.example", "made-up-1@hosted.nhs.example", "B@HOSTED.nhs.example"},
		message("referral", "dom1"))
	e.waitGone(t, id)
	entries, err := os.ReadDir(e.cfg.MaildirRoot)
	if err != nil {
		t.Fatal(err)
	}
	var folders []string
	for _, en := range entries {
		if !strings.HasPrefix(en.Name(), ".") { // relay/maildir's own bookkeeping
			folders = append(folders, en.Name())
		}
	}
	if len(folders) != 1 || folders[0] != "hosted.nhs.example" {
		t.Fatalf("Maildir root holds %v, want only the endpoint's folder hosted.nhs.example", folders)
	}
	got := e.waitMailbox(t, "hosted.nhs.example", 1)
	if len(got) != 1 || !strings.Contains(string(got[0]), "\r\nDelivered-To: a@hosted.nhs.example\r\n") {
		t.Errorf("domain mailbox holds %d messages, want one delivered to the first address", len(got))
	}
}

// The sender of a message submitted here whose address is not in the
// directory gets its DSN through the MX of its domain, over verified TLS,
// without the original Subject.
func TestDSNToSenderOutsideDirectoryGoesByMX(t *testing.T) {
	t.Parallel()
	ca := certstest.NewCA(t)
	srvTLS, _ := certstest.ServerTLS(t)
	srvTLS.Certificates[0] = ca.TLSCertificate(t, "mx.gp.example")
	sink := relaytest.Start(t, relaytest.Options{TLS: srvTLS, RequireTLS: true})
	const from = "reception@gp.example" // an account's address, not an endpoint
	d := directorytest.New(t, directorytest.Verified(sender, hostedHop))
	e := start(t, d, func(cfg *relay.Config) {
		cfg.RootCAs = ca.Pool
		cfg.LookupMX = func(_ context.Context, domain string) ([]*net.MX, error) {
			if domain != "gp.example" {
				return nil, &net.DNSError{Err: "no such host", Name: domain, IsNotFound: true}
			}
			return []*net.MX{{Host: "mx.gp.example.", Pref: 10}}, nil
		}
		cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr != "mx.gp.example:25" {
				return nil, errors.New("connection refused")
			}
			return (&net.Dialer{}).DialContext(ctx, network, sink.Addr)
		}
	})
	body := strings.Replace(message("Referral for Jane Doe", "mxdsn1"), "From: <"+sender+">", "From: <"+from+">", 1)
	id := e.submit(t, from, []string{"closed@practice.nhs.example"}, body)
	e.waitGone(t, id)
	msg := sink.WaitMessages(t, 1)[0]
	if !msg.TLS || msg.From != "" || len(msg.To) != 1 || msg.To[0] != from {
		t.Fatalf("sink got from %q to %v (TLS %v), want a null-sender DSN to %s over TLS", msg.From, msg.To, msg.TLS, from)
	}
	rep := parseDSN(t, msg.Data)
	if rc := rep.Recipients[0]; rc.FinalRecipient != "closed@practice.nhs.example" || rc.Status != "5.1.1" {
		t.Errorf("DSN recipient = %+v", rc)
	}
	if strings.Contains(string(msg.Data), "Jane Doe") || strings.Contains(string(rep.Headers), "Subject:") {
		t.Errorf("a DSN leaving the relay carries the original Subject:\n%s", msg.Data)
	}
	if !strings.Contains(string(rep.Headers), "Message-ID: <mxdsn1@practice.nhs.example>") {
		t.Errorf("returned header = %q, want the Message-ID", rep.Headers)
	}
}

// For mail from another relay, a sender outside the directory gets no DSN
// (no backscatter), and that is logged, counted and audited.
func TestUndeliverableDSNIsAudited(t *testing.T) {
	t.Parallel()
	log := &directorytest.AuditLog{}
	d := directorytest.New(t, directorytest.Verified(sender, hostedHop))
	e := start(t, d, func(cfg *relay.Config) { cfg.Audit = log })
	id, err := e.r.Submit(t.Context(), relay.Envelope{From: "someone@elsewhere.example", Inbound: true,
		Recipients: []string{"closed@practice.nhs.example"}}, strings.NewReader(message("x", "bs1")))
	if err != nil {
		t.Fatal(err)
	}
	e.waitGone(t, id)
	waitFor(t, "dsn_undeliverable_total to reach 1", func() bool { return e.metric(t, "nhsrelay_relay_dsn_undeliverable_total") == 1 })
	var ev *audit.Event
	for _, x := range log.Events() {
		if x.Action == "dsn.undeliverable" {
			ev = &x
		}
	}
	if ev == nil || ev.QueueID != id || ev.Endpoint != "someone@elsewhere.example" {
		t.Errorf("audit = %v, want dsn.undeliverable for %s", log.Actions(), id)
	}
	if msgs, _ := e.r.List(t.Context()); len(msgs) != 0 {
		t.Errorf("queue holds %d messages: a DSN was queued for a sender outside the directory", len(msgs))
	}
}

// freezer is a TCP proxy to target that can go silent: connections open
// before Freeze stay open and never answer again; new ones work.
type freezer struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	frozen chan struct{}
	conns  int
}

func startFreezer(t *testing.T, target string) *freezer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, target: target, frozen: make(chan struct{})}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns++
			frozen := f.frozen
			f.mu.Unlock()
			wg.Go(func() { f.serve(t, c, frozen) })
		}
	})
	return f
}

func (f *freezer) serve(t *testing.T, c net.Conn, frozen chan struct{}) {
	defer c.Close()
	up, err := net.Dial("tcp", f.target)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			select {
			case <-frozen: // silent: swallow, never forward
				continue
			default:
			}
			if n > 0 {
				dst.Write(buf[:n])
			}
			if err != nil {
				done <- struct{}{}
				return
			}
		}
	}
	go pipe(up, c)
	go pipe(c, up)
	select {
	case <-done:
	case <-t.Context().Done():
	}
}

// Freeze silences every connection opened so far.
func (f *freezer) Freeze() {
	f.mu.Lock()
	close(f.frozen)
	f.frozen = make(chan struct{})
	f.mu.Unlock()
}

func (f *freezer) Conns() int { f.mu.Lock(); defer f.mu.Unlock(); return f.conns }

// A pooled connection whose peer went silent is given up after
// ResetTimeout, not go-smtp's 5-minute command timeout, and the message
// goes over a new connection.
func TestSilentPooledConnectionIsReplaced(t *testing.T) {
	t.Parallel()
	sink, c := tlsSink(t)
	fr := startFreezer(t, sink.Addr)
	d := newDir()
	d.add("ward7@trust.nhs.example", directory.NextHop{Kind: directory.HopHost, Host: fr.ln.Addr().String()})
	e := start(t, d, func(cfg *relay.Config) {
		cfg.RootCAs = c.RootCAs
		cfg.HopConcurrency = 1
		cfg.ResetTimeout = 200 * time.Millisecond
	})
	first := e.submit(t, sender, []string{"ward7@trust.nhs.example"}, message("one", "frz1"))
	// Gone from the queue, not just at the sink: the relay has read the
	// sink's reply and pooled the connection (freezing it before the reply
	// got through would hang the first transaction, not test the pool).
	e.waitGone(t, first)
	fr.Freeze() // the pooled connection's peer stops answering
	id := e.submit(t, sender, []string{"ward7@trust.nhs.example"}, message("two", "frz2"))
	sink.WaitMessages(t, 2)
	e.waitGone(t, id)
	if n := fr.Conns(); n != 2 {
		t.Errorf("connections = %d, want 2 (the silent one replaced)", n)
	}
	if v := e.metric(t, "nhsrelay_relay_deferred_total"); v != 0 {
		t.Errorf("deferred_total = %v: a silent pooled connection cost a retry", v)
	}
}

// Hops with no delivery in progress and no pooled connection are
// forgotten, so the relay does not keep state for every domain it ever
// delivered to.
func TestIdleHopsArePruned(t *testing.T) {
	t.Parallel()
	ca := certstest.NewCA(t)
	srvTLS, _ := certstest.ServerTLS(t)
	domains := []string{"a.nhs.example", "b.nhs.example", "c.nhs.example"}
	srvTLS.Certificates[0] = ca.TLSCertificate(t, domains...)
	sink := relaytest.Start(t, relaytest.Options{TLS: srvTLS, RequireTLS: true})
	d := newDir()
	for _, dom := range domains {
		d.add("ward@"+dom, directory.NextHop{Kind: directory.HopMX})
	}
	e := start(t, d, func(cfg *relay.Config) {
		cfg.RootCAs = ca.Pool
		cfg.IdleTimeout = 50 * time.Millisecond
		cfg.LookupMX = func(_ context.Context, domain string) ([]*net.MX, error) {
			return nil, &net.DNSError{Err: "no such host", Name: domain, IsNotFound: true} // implicit MX
		}
		cfg.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, sink.Addr)
		}
	})
	for _, dom := range domains {
		e.submit(t, sender, []string{"ward@" + dom}, message("referral", "prune-"+dom))
	}
	sink.WaitMessages(t, len(domains))
	// The reaper closes the idle connections, then forgets their hops.
	waitFor(t, "next_hops to drop to 0", func() bool { return e.metric(t, "nhsrelay_relay_next_hops") == 0 })
	waitFor(t, "the queue to empty", func() bool {
		msgs, err := e.r.List(t.Context())
		return err == nil && len(msgs) == 0
	})
}
