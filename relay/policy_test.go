package relay_test

import (
	"context"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"nhsrelay/audit"
	"nhsrelay/certs/certstest"
	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
	"nhsrelay/relay"
	"nhsrelay/relay/dsn"
	"nhsrelay/relay/queue"
	"nhsrelay/relay/relaytest"
)

// These tests run the relay against the real directory
// (directorytest: bbolt store, the real CheckRecipient policy), because
// the policy at delivery time is the directory's, not a fake's.

var hostedHop = directory.NextHop{Kind: directory.HopHosted}

// endpointID returns the ID of the endpoint addr names.
func endpointID(t *testing.T, d *directory.Directory, addr string) string {
	t.Helper()
	ep, err := d.Lookup(t.Context(), addr)
	if err != nil {
		t.Fatalf("Lookup(%s): %v", addr, err)
	}
	return ep.ID
}

// An endpoint suspended or retired after the intake accepted the message
// gets nothing; the sender gets a 5.7.1 DSN with the directory's reason.
func TestEndpointSuspendedAfterAcceptanceFails(t *testing.T) {
	t.Parallel()
	for name, change := range map[string]func(context.Context, *directory.Directory, string) error{
		"suspended": func(ctx context.Context, d *directory.Directory, id string) error {
			return d.Suspend(ctx, id, "practice merged into Y00001")
		},
		"retired": func(ctx context.Context, d *directory.Directory, id string) error {
			return d.Retire(ctx, id, "practice merged into Y00001")
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sink, c := tlsSink(t)
			const rcpt = "ward7@trust.nhs.example"
			d := directorytest.New(t, directorytest.Verified(sender, hostedHop),
				directorytest.Verified(rcpt, directory.NextHop{Kind: directory.HopHost, Host: sink.Addr}))
			e := start(t, d, func(cfg *relay.Config) { cfg.RootCAs = c.RootCAs })
			// Accepted while verified (smtpd asked CheckRecipient at RCPT);
			// the administrator acts before the delivery attempt.
			if err := change(t.Context(), d, endpointID(t, d, rcpt)); err != nil {
				t.Fatal(err)
			}
			id := e.submit(t, sender, []string{rcpt}, message("referral", "susp-"+name))
			e.waitGone(t, id)
			rep := parseDSN(t, e.waitMailbox(t, sender, 1)[0])
			rc := rep.Recipients[0]
			if rc.Action != dsn.Failed || rc.Status != "5.7.1" || !rc.HeldUntil.IsZero() ||
				!strings.Contains(rc.Diagnostic, name+": practice merged into Y00001") {
				t.Errorf("DSN recipient = %+v, want failed 5.7.1 with the reason in words", rc)
			}
			if n := len(sink.Messages()); n != 0 {
				t.Errorf("the %s endpoint's next hop received %d messages", name, n)
			}
		})
	}
}

// An administrator's redirect is followed at delivery: to the target's
// mailbox (Delivered-To the target, X-Original-To the recipient used), and
// to a remote target with the target's address in RCPT TO.
func TestRedirectFollowedAtDelivery(t *testing.T) {
	t.Parallel()
	sink, c := tlsSink(t)
	d := redirectDirectory(t, sink.Addr)
	e := start(t, d, func(cfg *relay.Config) { cfg.RootCAs = c.RootCAs })
	id := e.submit(t, sender, []string{oldBox, oldRemote}, message("referral", "redir1"))
	e.waitGone(t, id)
	got := e.waitMailbox(t, newBox, 1)
	if !strings.HasPrefix(string(got[0]), "Return-Path: <"+sender+">\r\nDelivered-To: "+newBox+"\r\nX-Original-To: "+oldBox+"\r\n") {
		t.Errorf("redirected copy's trace fields:\n%.300s", got[0])
	}
	if n := len(e.mailbox(t, oldBox)); n != 0 {
		t.Errorf("the redirected endpoint's own mailbox got %d messages", n)
	}
	msgs := sink.WaitMessages(t, 1)
	if to := msgs[0].To; len(to) != 1 || to[0] != newRemote {
		t.Errorf("remote RCPT TO = %v, want the redirect target %s", to, newRemote)
	}
}

// Following a redirect is audited (endpoint.redirect_followed, by the
// directory's words) once per message and recipient: a recipient whose
// redirect is followed again on a retry is audited once, when it is
// delivered; a recipient without a redirect is not.
func TestRedirectFollowedIsAuditedOnce(t *testing.T) {
	t.Parallel()
	sink, c := tlsSink(t)
	const plainBox = "plain@hosted.nhs.example"
	d := redirectDirectory(t, sink.Addr, directorytest.Verified(plainBox, hostedHop))
	var rcpts atomic.Int32
	sink.SetRcpt(func(to string) error {
		if rcpts.Add(1) == 1 { // the first attempt at the remote target is deferred
			return relaytest.Reply(451, 4, 3, "try again later")
		}
		return nil
	})
	log := &directorytest.AuditLog{}
	e := start(t, d, func(cfg *relay.Config) { cfg.RootCAs = c.RootCAs; cfg.Audit = log })
	first := e.clock.Now()
	id := e.submit(t, sender, []string{oldBox, oldRemote, plainBox}, message("referral", "redir-audit"))
	waitFor(t, "the remote recipient deferred", func() bool {
		m, err := e.r.Get(t.Context(), id)
		return err == nil && m.Recipients[1].Attempts == 1 && m.Recipients[1].State == queue.Queued
	})
	e.clock.Advance(2 * time.Hour) // past RetryMax: the retry follows the redirect again
	e.r.Kick()
	e.waitGone(t, id)

	got := map[string]audit.Event{}
	for _, ev := range log.Events() {
		if ev.Action != "endpoint.redirect_followed" {
			continue
		}
		if _, dup := got[ev.Endpoint]; dup {
			t.Errorf("endpoint.redirect_followed recorded again: %+v", ev)
		}
		got[ev.Endpoint] = ev
	}
	if len(got) != 2 {
		t.Fatalf("redirect events for %v, want one each for %s and %s (actions %v)", got, oldBox, oldRemote, log.Actions())
	}
	for addr, at := range map[string]time.Time{oldBox: first, oldRemote: first.Add(2 * time.Hour)} {
		ev := got[addr]
		if ev.QueueID != id || ev.Actor != "system" || !ev.Time.Equal(at) || ev.Outcome != "ok" ||
			!strings.Contains(ev.Detail, "from "+addr+" to ") {
			t.Errorf("redirect event for %s = %+v, want queue ID %s, actor system, time %v", addr, ev, id, at)
		}
	}
}

// A pending endpoint (not verified yet) holds its recipient: the sender is
// told once, a retry that holds it again for the same reason tells nobody
// again, and once the endpoint is verified the next re-evaluation
// delivers it.
func TestPendingEndpointHeldThenDeliveredOnceVerified(t *testing.T) {
	t.Parallel()
	const rcpt = "labs@hosted.nhs.example"
	pending := directorytest.Pending(rcpt)
	pending.NextHop = hostedHop
	d := directorytest.New(t, directorytest.Verified(sender, hostedHop), pending)
	e := start(t, d, nil)
	id := e.submit(t, sender, []string{rcpt}, message("referral", "pend1"))

	rep := parseDSN(t, e.waitMailbox(t, sender, 1)[0])
	rc := rep.Recipients[0]
	if rc.Action != dsn.Delayed || rc.Status != "4.7.1" || rc.HeldUntil.IsZero() || !strings.Contains(rc.Diagnostic, "not yet verified") {
		t.Errorf("hold DSN recipient = %+v, want delayed (RFC 3464 §2.3.3), 4.7.1, held, \"not yet verified\"", rc)
	}
	if strings.Contains(rep.Human, "will not be retried") || !strings.Contains(rep.Human, "held") {
		t.Errorf("hold DSN's human part contradicts the hold:\n%s", rep.Human)
	}
	m := e.waitHeld(t, id, 1)
	if m.Recipients[0].HoldNotified == "" {
		t.Errorf("held recipient = %+v, want the reason told recorded", m.Recipients[0])
	}
	waitFor(t, "held gauge to read 1", func() bool { return e.metric(t, "nhsrelay_queue_held_recipients") == 1 })

	// queue retry: held again for the same reason, no second DSN.
	if err := e.r.Retry(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	e.waitHeld(t, id, 2)
	if v := e.metric(t, "nhsrelay_relay_dsn_total"); v != 1 {
		t.Errorf("dsn_total = %v after a retry held again for the same reason, want 1", v)
	}

	// Verified now: the periodic re-evaluation delivers it.
	if err := d.Attest(t.Context(), endpointID(t, d, rcpt), "signed letter from the practice manager"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Hour) // past RetryMax
	e.r.Kick()
	e.waitGone(t, id)
	e.waitMailbox(t, rcpt, 1)
	if n := len(e.mailbox(t, sender)); n != 1 {
		t.Errorf("sender has %d DSNs, want only the hold notice", n)
	}
	waitFor(t, "held gauge to read 0", func() bool { return e.metric(t, "nhsrelay_queue_held_recipients") == 0 })
}

// A recipient still held at GiveUpAfter fails with a final DSN.
func TestHeldRecipientFailsAtGiveUp(t *testing.T) {
	t.Parallel()
	const rcpt = "labs@hosted.nhs.example"
	pending := directorytest.Pending(rcpt)
	pending.NextHop = hostedHop
	d := directorytest.New(t, directorytest.Verified(sender, hostedHop), pending)
	e := start(t, d, nil)
	id := e.submit(t, sender, []string{rcpt}, message("referral", "pend2"))
	e.waitHeld(t, id, 1)
	e.clock.Advance(5*24*time.Hour + time.Minute)
	e.r.Kick()
	e.waitGone(t, id)
	dsns := e.waitMailbox(t, sender, 2)
	var final *dsn.Report
	for _, raw := range dsns {
		if rep := parseDSN(t, raw); rep.Recipients[0].HeldUntil.IsZero() {
			final = rep
		}
	}
	if final == nil {
		t.Fatalf("no final DSN among %d", len(dsns))
	}
	if rc := final.Recipients[0]; rc.Action != dsn.Failed || rc.Status != "5.7.1" || !strings.Contains(rc.Diagnostic, "gave up") {
		t.Errorf("final DSN recipient = %+v", rc)
	}
	if !strings.Contains(final.Human, "will not be retried") {
		t.Errorf("final DSN does not say it is final:\n%s", final.Human)
	}
}

// waitHeld waits until id's first recipient is Held after n attempts.
func (e *env) waitHeld(t testing.TB, id string, n int) queue.Message {
	t.Helper()
	var m queue.Message
	waitFor(t, "recipient held", func() bool {
		var err error
		m, err = e.r.Get(t.Context(), id)
		return err == nil && m.Recipients[0].State == queue.Held && m.Recipients[0].Attempts >= n
	})
	return m
}

// relayMailer is cmd's adapter: the directory's challenges go through the
// relay as System mail.
type relayMailer struct{ r *relay.Relay }

func (m *relayMailer) Send(ctx context.Context, from string, to []string, msg io.Reader) error {
	_, err := m.r.Submit(ctx, relay.Envelope{From: from, Recipients: to, System: true}, msg)
	return err
}

// A verification challenge (System mail) reaches a pending endpoint, which
// clinical mail may not.
func TestSystemMailReachesPendingEndpoint(t *testing.T) {
	t.Parallel()
	const rcpt = "labs@hosted.nhs.example"
	pending := directorytest.Pending(rcpt)
	pending.NextHop = hostedHop
	mailer := &relayMailer{}
	d := directorytest.Open(t, func(c *directory.Config) {
		c.Mailer, c.ChallengeFrom = mailer, "directory@relay.nhs.example"
	}, directorytest.Verified(sender, hostedHop), pending)
	e := start(t, d, nil)
	mailer.r = e.r
	if err := d.StartChallenge(t.Context(), endpointID(t, d, rcpt)); err != nil {
		t.Fatal(err)
	}
	got := e.waitMailbox(t, rcpt, 1)
	if !strings.Contains(string(got[0]), "Verification code: ") {
		t.Errorf("pending endpoint's mailbox holds:\n%.400s", got[0])
	}
	waitFor(t, "the challenge to leave the queue", func() bool {
		msgs, err := e.r.List(t.Context())
		return err == nil && len(msgs) == 0
	})
}

// The endpoints of the redirect tests: a hosted mailbox redirected to
// another, and a remote endpoint (at sinkAddr) redirected to another.
const (
	oldBox    = "old@hosted.nhs.example"
	newBox    = "new@hosted.nhs.example"
	oldRemote = "ward7@trust.nhs.example"
	newRemote = "ward9@trust.nhs.example"
)

// redirectDirectory is a real directory holding the sender, both redirects
// (set by an administrator) and extra.
func redirectDirectory(t *testing.T, sinkAddr string, extra ...directory.Endpoint) *directory.Directory {
	t.Helper()
	remote := directory.NextHop{Kind: directory.HopHost, Host: sinkAddr}
	eps := append([]directory.Endpoint{directorytest.Verified(sender, hostedHop),
		directorytest.Verified(oldBox, hostedHop), directorytest.Verified(newBox, hostedHop),
		directorytest.Verified(oldRemote, remote), directorytest.Verified(newRemote, remote)}, extra...)
	d := directorytest.New(t, eps...)
	for from, to := range map[string]string{oldBox: newBox, oldRemote: newRemote} {
		if err := d.SetRedirect(t.Context(), endpointID(t, d, from), to); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// A message accepted while its recipient could be sent to, whose
// recipient then loses its only usable S/MIME certificate (expired here),
// is held, not failed: the sender gets "Action: delayed" (RFC 3464
// §2.3.3) with the directory's reason and the give-up date, and "failed"
// only when the relay gives up. The directory decides (RequireSMIME), as
// it did at RCPT.
func TestCertificateLostAfterAcceptanceHeldThenFailed(t *testing.T) {
	t.Parallel()
	const rcpt = "ward7@trust.nhs.example"
	ca := certstest.NewCA(t)
	cert, _ := ca.SMIMECertificate(t, rcpt) // valid for a day from an hour ago
	remote := directorytest.Verified(rcpt, directory.NextHop{Kind: directory.HopHost, Host: "127.0.0.1:9"})
	remote.Certificates = [][]byte{cert.Raw}
	dclock := directorytest.NewClock(time.Now())
	d := directorytest.Open(t, func(c *directory.Config) { c.Now, c.RequireSMIME = dclock.Now, true },
		directorytest.Verified(sender, hostedHop), remote)
	if _, err := d.CheckRecipient(t.Context(), rcpt); err != nil {
		t.Fatalf("CheckRecipient before expiry = %v; RCPT would have accepted", err)
	}
	dclock.Advance(48 * time.Hour) // the certificate has expired since RCPT
	e := start(t, d, nil)
	id := e.submit(t, sender, []string{rcpt}, message("referral", "lostcert"))

	rep := parseDSN(t, e.waitMailbox(t, sender, 1)[0])
	rc := rep.Recipients[0]
	if rc.Action != dsn.Delayed || rc.Status != "4.7.5" || rc.HeldUntil.IsZero() || rc.WillRetryUntil.IsZero() ||
		!strings.Contains(rc.Diagnostic, "no valid S/MIME certificate (expired on") {
		t.Errorf("hold DSN recipient = %+v, want delayed, held, with the certificate's expiry in words", rc)
	}
	if strings.Contains(rep.Human, "will not be retried") || !strings.Contains(rep.Human, "held, not sent") {
		t.Errorf("hold DSN's human part contradicts the hold:\n%s", rep.Human)
	}
	e.waitHeld(t, id, 1)

	e.clock.Advance(5*24*time.Hour + time.Minute) // past GiveUpAfter
	e.r.Kick()
	e.waitGone(t, id)
	var final *dsn.Report
	for _, raw := range e.waitMailbox(t, sender, 2) {
		if r := parseDSN(t, raw); r.Recipients[0].Action == dsn.Failed {
			final = r
		}
	}
	if final == nil || !strings.Contains(final.Recipients[0].Diagnostic, "gave up") || !strings.HasPrefix(final.Recipients[0].Status, "5.") {
		t.Fatalf("final DSN = %+v, want failed 5.x.x saying it gave up", final)
	}
}
