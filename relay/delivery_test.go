package relay_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"nhsrelay/certs/certstest"
	"nhsrelay/directory"
	"nhsrelay/relay"
	"nhsrelay/relay/dsn"
	"nhsrelay/relay/queue"
	"nhsrelay/relay/relaytest"
)

func TestMaildirDelivery(t *testing.T) {
	t.Parallel()
	d := newDir()
	d.add("ward7@hosted.nhs.example", directory.NextHop{Kind: directory.HopHosted})
	e := start(t, d, nil)
	id := e.submit(t, sender, []string{"ward7@hosted.nhs.example", "WARD7@hosted.nhs.example"}, message("referral", "tok1"))
	e.waitGone(t, id)
	got := e.waitMailbox(t, "ward7@hosted.nhs.example", 1)
	if len(got) != 1 {
		t.Fatalf("mailbox holds %d messages, want 1 (duplicate recipients are one mailbox)", len(got))
	}
	s := string(got[0])
	if !strings.HasPrefix(s, "Return-Path: <"+sender+">\r\nDelivered-To: ward7@hosted.nhs.example\r\n") {
		t.Errorf("delivered message lacks trace fields:\n%s", s)
	}
	if !strings.HasSuffix(s, message("referral", "tok1")) {
		t.Errorf("delivered message is not the submitted one:\n%s", s)
	}
	if v := e.metric(t, "nhsrelay_relay_delivered_total"); v != 1 {
		t.Errorf("delivered_total = %v, want 1", v)
	}
	waitFor(t, "queue_messages to reach 0", func() bool { return e.metric(t, "nhsrelay_queue_messages") == 0 })
}

// tlsSink starts a sink offering STARTTLS with a certificate for
// localhost/127.0.0.1 from a fresh CA, and returns that CA's pool.
func tlsSink(t *testing.T) (*relaytest.Sink, *relay.Config) {
	srvTLS, pool := certstest.ServerTLS(t)
	s := relaytest.Start(t, relaytest.Options{TLS: srvTLS, RequireTLS: true})
	return s, &relay.Config{RootCAs: pool}
}

func TestRemoteDeliveryOverVerifiedTLS(t *testing.T) {
	t.Parallel()
	sink, c := tlsSink(t)
	d := newDir()
	d.add("ward7@trust.nhs.example", directory.NextHop{Kind: directory.HopHost, Host: sink.Addr})
	d.add("cardio@trust.nhs.example", directory.NextHop{Kind: directory.HopHost, Host: sink.Addr})
	e := start(t, d, func(cfg *relay.Config) { cfg.RootCAs = c.RootCAs })
	body := message("referral", "tok2")
	id := e.submit(t, sender, []string{"ward7@trust.nhs.example", "cardio@trust.nhs.example"}, body)
	msgs := sink.WaitMessages(t, 1)
	e.waitGone(t, id)
	m := msgs[0]
	if !m.TLS || m.From != sender || len(m.To) != 2 || string(m.Data) != body {
		t.Errorf("sink got %+v (TLS %v), want one TLS transaction for both recipients", m.To, m.TLS)
	}
	if len(sink.Messages()) != 1 {
		t.Errorf("sink got %d transactions, want 1 for one hop", len(sink.Messages()))
	}
	if v := e.metric(t, "nhsrelay_relay_delivered_total"); v != 2 {
		t.Errorf("delivered_total = %v, want 2", v)
	}
	if v := e.metric(t, "nhsrelay_relay_delivery_latency_seconds"); v != 2 {
		t.Errorf("latency samples = %v, want 2", v)
	}
}

func TestUntrustedCertificateDefersNeverPlain(t *testing.T) {
	t.Parallel()
	srvTLS, _ := certstest.ServerTLS(t)
	// The sink would take plain SMTP: only our refusal keeps the message off it.
	sink := relaytest.Start(t, relaytest.Options{TLS: srvTLS})
	d := newDir()
	d.add("ward7@trust.nhs.example", directory.NextHop{Kind: directory.HopHost, Host: sink.Addr})
	e := start(t, d, func(cfg *relay.Config) { cfg.RootCAs = certstest.NewCA(t).Pool })
	id := e.submit(t, sender, []string{"ward7@trust.nhs.example"}, message("referral", "tok3"))
	m := e.waitAttempts(t, id, 1)
	rc := m.Recipients[0]
	if rc.State != queue.Queued || rc.LastCode != "4.7.5" || !strings.Contains(rc.LastError, "could not be verified") {
		t.Errorf("recipient = %+v, want queued with 4.7.5 and words about the certificate", rc)
	}
	if n := len(sink.Messages()); n != 0 {
		t.Errorf("sink received %d messages over an unverified connection", n)
	}
	waitFor(t, "deferred_total to reach 1", func() bool { return e.metric(t, "nhsrelay_relay_deferred_total") == 1 })
}

func TestNoSTARTTLSDefers(t *testing.T) {
	t.Parallel()
	sink := relaytest.Start(t, relaytest.Options{}) // plain only
	d := newDir()
	d.add("ward7@trust.nhs.example", directory.NextHop{Kind: directory.HopHost, Host: sink.Addr})
	e := start(t, d, nil)
	id := e.submit(t, sender, []string{"ward7@trust.nhs.example"}, message("referral", "tok4"))
	rc := e.waitAttempts(t, id, 1).Recipients[0]
	if rc.State != queue.Queued || rc.LastCode != "4.7.10" || !strings.Contains(rc.LastError, "does not offer STARTTLS") {
		t.Errorf("recipient = %+v, want queued, 4.7.10, STARTTLS named", rc)
	}
	if n := len(sink.Messages()); n != 0 {
		t.Errorf("sink received %d messages in clear", n)
	}
}

func TestPlainLoopbackOnlyToLoopback(t *testing.T) {
	t.Parallel()
	sink := relaytest.Start(t, relaytest.Options{})
	d := newDir()
	plain := directory.NextHop{Kind: directory.HopHost, Host: sink.Addr, TLS: directory.TLSPlainLoopback}
	d.add("bench@sink.example", plain)
	e := start(t, d, nil)
	id := e.submit(t, sender, []string{"bench@sink.example"}, message("bench", "tok5"))
	sink.WaitMessages(t, 1)
	e.waitGone(t, id)

	// The same directory entry, but the address dialled is not loopback.
	lying := start(t, d, func(cfg *relay.Config) {
		cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return remoteAddrConn{c, &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 25}}, nil
		}
	})
	id = lying.submit(t, sender, []string{"bench@sink.example"}, message("bench", "tok6"))
	rc := lying.waitAttempts(t, id, 1).Recipients[0]
	if rc.State != queue.Queued || !strings.Contains(rc.LastError, "not loopback") {
		t.Errorf("recipient = %+v, want refused with words about loopback", rc)
	}
	if n := len(sink.Messages()); n != 1 {
		t.Errorf("sink has %d messages, want only the first", n)
	}
}

type remoteAddrConn struct {
	net.Conn
	addr net.Addr
}

func (c remoteAddrConn) RemoteAddr() net.Addr { return c.addr }

func TestTemporaryFailureRetriesThenDelayThenFailureDSN(t *testing.T) {
	t.Parallel()
	sink, c := tlsSink(t)
	sink.SetRcpt(func(string) error { return relaytest.Reply(451, 4, 3, "try again later") })
	d := newDir()
	d.add("ward7@trust.nhs.example", directory.NextHop{Kind: directory.HopHost, Host: sink.Addr})
	e := start(t, d, func(cfg *relay.Config) { cfg.RootCAs = c.RootCAs })
	id := e.submit(t, sender, []string{"ward7@trust.nhs.example"}, message("referral", "tok7"))

	m := e.waitAttempts(t, id, 1)
	if rc := m.Recipients[0]; rc.LastCode != "4.4.3" || !rc.NextAttempt.After(e.clock.Now()) {
		t.Fatalf("after a 451: %+v, want 4.4.3 and a later next attempt", rc)
	}
	if got := e.mailbox(t, sender); len(got) != 0 {
		t.Fatalf("DSN sent after one temporary failure: %v", got)
	}
	// Past DelayWarnAfter (4h): one delay DSN.
	e.clock.Advance(5 * time.Hour)
	e.r.Kick()
	e.waitAttempts(t, id, 2)
	dsns := e.waitMailbox(t, sender, 1)
	rep := parseDSN(t, dsns[0])
	if rc := rep.Recipients[0]; rc.Action != dsn.Delayed || rc.Status != "4.4.3" || rc.FinalRecipient != "ward7@trust.nhs.example" ||
		rc.WillRetryUntil.IsZero() || !strings.Contains(rc.Diagnostic, "451") {
		t.Errorf("delay DSN recipient = %+v", rc)
	}
	// Another retry: no second delay DSN.
	e.clock.Advance(2 * time.Hour)
	e.r.Kick()
	e.waitAttempts(t, id, 3)
	if got := e.mailbox(t, sender); len(got) != 1 {
		t.Fatalf("mailbox has %d DSNs after a second delay, want 1", len(got))
	}
	// Past GiveUpAfter (5 days): failure DSN and the message leaves the queue.
	e.clock.Advance(5 * 24 * time.Hour)
	e.r.Kick()
	e.waitGone(t, id)
	dsns = e.waitMailbox(t, sender, 2)
	var failed *dsn.Report
	for _, raw := range dsns {
		if r := parseDSN(t, raw); r.Recipients[0].Action == dsn.Failed {
			failed = r
		}
	}
	if failed == nil {
		t.Fatalf("no failure DSN among %d", len(dsns))
	}
	if rc := failed.Recipients[0]; rc.Status != "5.4.3" || rc.DiagnosticType != "smtp" || !strings.Contains(rc.Diagnostic, "451 4.4.3 try again later") {
		t.Errorf("failure DSN recipient = %+v", rc)
	}
	if failed.QueueID != id || failed.ReportingMTA != "relay.nhs.example" {
		t.Errorf("failure DSN per-message fields = %q %q", failed.QueueID, failed.ReportingMTA)
	}
	if v := e.metric(t, "nhsrelay_relay_bounced_total"); v != 1 {
		t.Errorf("bounced_total = %v, want 1", v)
	}
	if n := len(sink.Messages()); n != 0 {
		t.Errorf("sink accepted %d messages though it answered 451", n)
	}
}

func TestPermanentFailureDSNCarriesHeadersNotBody(t *testing.T) {
	t.Parallel()
	sink, c := tlsSink(t)
	sink.SetData(func(string, []string, []byte) error { return relaytest.Reply(550, 7, 1, "policy says no") })
	d := newDir()
	d.add("ward7@trust.nhs.example", directory.NextHop{Kind: directory.HopHost, Host: sink.Addr})
	e := start(t, d, func(cfg *relay.Config) { cfg.RootCAs = c.RootCAs })
	id := e.submit(t, sender, []string{"ward7@trust.nhs.example"}, message("Referral for patient", "SECRETBODY8"))
	e.waitGone(t, id)
	raw := e.waitMailbox(t, sender, 1)[0]
	if bytes.Contains(raw, []byte("Clinical body SECRETBODY8")) {
		t.Fatalf("the DSN carries the clinical body:\n%s", raw)
	}
	rep := parseDSN(t, raw)
	if !bytes.Contains(rep.Headers, []byte("Subject: Referral for patient\r\n")) ||
		!bytes.Contains(rep.Headers, []byte("Message-ID: <SECRETBODY8@practice.nhs.example>")) {
		t.Errorf("third part = %q, want the original header", rep.Headers)
	}
	rc := rep.Recipients[0]
	if rc.Action != dsn.Failed || rc.Status != "5.7.1" || rc.Diagnostic != "550 5.7.1 policy says no" || rc.RemoteMTA != "127.0.0.1" {
		t.Errorf("DSN recipient = %+v", rc)
	}
	if !strings.Contains(string(raw), "\r\nReturn-Path: <>\r\n") && !strings.HasPrefix(string(raw), "Return-Path: <>\r\n") {
		t.Errorf("DSN was not sent with a null reverse-path:\n%.300s", raw)
	}
}

func TestNullSenderNeverGetsDSN(t *testing.T) {
	t.Parallel()
	sink, c := tlsSink(t)
	sink.SetRcpt(func(string) error { return relaytest.Reply(550, 1, 1, "no such user") })
	d := newDir()
	d.add("ward7@trust.nhs.example", directory.NextHop{Kind: directory.HopHost, Host: sink.Addr})
	e := start(t, d, func(cfg *relay.Config) { cfg.RootCAs = c.RootCAs })
	id := e.submit(t, "", []string{"ward7@trust.nhs.example"}, message("a bounce", "tok9"))
	e.waitGone(t, id)
	if msgs, _ := e.r.List(t.Context()); len(msgs) != 0 {
		t.Errorf("queue holds %d messages after bouncing a null-sender message: a DSN was queued", len(msgs))
	}
	if v := e.metric(t, "nhsrelay_relay_dsn_total"); v != 0 {
		t.Errorf("dsn_total = %v, want 0", v)
	}
	if v := e.metric(t, "nhsrelay_relay_bounced_total"); v != 1 {
		t.Errorf("bounced_total = %v, want 1", v)
	}
}

func TestConnectionReuse(t *testing.T) {
	t.Parallel()
	sink, c := tlsSink(t)
	d := newDir()
	d.add("ward7@trust.nhs.example", directory.NextHop{Kind: directory.HopHost, Host: sink.Addr})
	e := start(t, d, func(cfg *relay.Config) {
		cfg.RootCAs, cfg.HopConcurrency = c.RootCAs, 1
		// Bounds on real time no slow machine can reach: a pooled
		// connection is never closed for idling or a slow RSET here.
		cfg.IdleTimeout, cfg.ResetTimeout = time.Hour, time.Hour
	})
	const n = 5
	for i := range n {
		e.submit(t, sender, []string{"ward7@trust.nhs.example"}, message("referral", "reuse"+string(rune('a'+i))))
	}
	sink.WaitMessages(t, n)
	if got := sink.Connections(); got != 1 {
		t.Errorf("sink saw %d connections for %d messages to one hop, want 1", got, n)
	}
}

func TestMXPreferenceAndFallback(t *testing.T) {
	t.Parallel()
	ca := certstest.NewCA(t)
	srvTLS, _ := certstest.ServerTLS(t)
	srvTLS.Certificates[0] = ca.TLSCertificate(t, "mx2.trust.nhs.example")
	sink := relaytest.Start(t, relaytest.Options{TLS: srvTLS, RequireTLS: true})
	d := newDir()
	d.add("ward7@trust.nhs.example", directory.NextHop{Kind: directory.HopMX})
	var mu sync.Mutex
	var dialled []string
	e := start(t, d, func(cfg *relay.Config) {
		cfg.RootCAs = ca.Pool
		cfg.LookupMX = func(_ context.Context, domain string) ([]*net.MX, error) {
			if domain != "trust.nhs.example" {
				return nil, &net.DNSError{Err: "no such host", Name: domain, IsNotFound: true}
			}
			return []*net.MX{{Host: "mx2.trust.nhs.example.", Pref: 20}, {Host: "mx1.trust.nhs.example.", Pref: 10}}, nil
		}
		cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			mu.Lock()
			dialled = append(dialled, addr)
			mu.Unlock()
			if addr == "mx2.trust.nhs.example:25" {
				return (&net.Dialer{}).DialContext(ctx, network, sink.Addr)
			}
			return nil, errors.New("connection refused")
		}
	})
	id := e.submit(t, sender, []string{"ward7@trust.nhs.example"}, message("referral", "tok10"))
	sink.WaitMessages(t, 1)
	e.waitGone(t, id)
	mu.Lock()
	defer mu.Unlock()
	if len(dialled) != 2 || dialled[0] != "mx1.trust.nhs.example:25" || dialled[1] != "mx2.trust.nhs.example:25" {
		t.Errorf("dialled %v, want mx1 then mx2 (preference order, then fallback)", dialled)
	}
}

func TestHeldBySealerTellsSender(t *testing.T) {
	t.Parallel()
	sink, c := tlsSink(t)
	d := newDir()
	d.add("ward7@trust.nhs.example", directory.NextHop{Kind: directory.HopHost, Host: sink.Addr})
	e := start(t, d, func(cfg *relay.Config) {
		cfg.RootCAs = c.RootCAs
		cfg.Sealer = holdSealer{}
	})
	id := e.submit(t, sender, []string{"ward7@trust.nhs.example"}, message("referral", "tok11"))
	raw := e.waitMailbox(t, sender, 1)[0] // the DSN to the sender is not held: it is hosted
	rep := parseDSN(t, raw)
	if rc := rep.Recipients[0]; rc.Action != dsn.Delayed || rc.Status != "4.7.5" || !strings.Contains(rc.Diagnostic, "no valid S/MIME certificate") {
		t.Errorf("hold DSN recipient = %+v", rc)
	}
	if !strings.Contains(rep.Human, "held") {
		t.Errorf("human part does not say the message is held:\n%s", rep.Human)
	}
	// The DSN is queued before the record changes (a crash repeats a DSN,
	// never loses one), so wait for the record.
	waitFor(t, "the recipient to be held", func() bool {
		m, err := e.r.Get(t.Context(), id)
		return err == nil && m.Recipients[0].State == queue.Held
	})
	if n := len(sink.Messages()); n != 0 {
		t.Errorf("sink got %d messages though the sealer held them", n)
	}
}

// holdSealer holds anything not for a hosted endpoint, and passes the rest.
type holdSealer struct{}

func (holdSealer) Seal(_ context.Context, _ queue.Message, rcpts []directory.Endpoint, body io.Reader, w io.Writer) error {
	for _, ep := range rcpts {
		if !ep.Hosted() {
			return fmt.Errorf("%w: no valid S/MIME certificate for %s", relay.ErrHold, ep.Address)
		}
	}
	_, err := io.Copy(w, body)
	return err
}
