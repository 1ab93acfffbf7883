package relay_test

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"nhsrelay/certs/certstest"
	"nhsrelay/relay"
	"nhsrelay/relay/queue"
	"nhsrelay/relay/relaytest"
)

// headerSigner stands in for DKIM: it prepends one header field, so a test
// can see the body went through it.
type headerSigner struct{}

func (headerSigner) Sign(_ context.Context, _ queue.Message, body io.Reader, w io.Writer) error {
	if _, err := io.WriteString(w, "X-Test-Signed: yes\r\n"); err != nil {
		return err
	}
	_, err := io.Copy(w, body)
	return err
}

type outcomes struct {
	mu  sync.Mutex
	got []relay.NoticeOutcome
}

func (o *outcomes) NoticeOutcome(_ context.Context, n relay.NoticeOutcome) bool {
	o.mu.Lock()
	o.got = append(o.got, n)
	o.mu.Unlock()
	return strings.HasPrefix(n.From, "bounce+")
}

func (o *outcomes) wait(t *testing.T, n int) []relay.NoticeOutcome {
	t.Helper()
	waitFor(t, "notice outcomes", func() bool { o.mu.Lock(); defer o.mu.Unlock(); return len(o.got) >= n })
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]relay.NoticeOutcome(nil), o.got...)
}

type stsPolicy struct{ p *relay.MTASTSPolicy }

func (s stsPolicy) Policy(context.Context, string) (*relay.MTASTSPolicy, error) { return s.p, nil }

// noticeEnv runs a relay whose MX lookups name mxHost and whose dials all
// reach sink.
func noticeEnv(t *testing.T, sink *relaytest.Sink, mxHost string, edit func(*relay.Config)) (*env, *outcomes) {
	obs := &outcomes{}
	e := start(t, newDir(), func(cfg *relay.Config) {
		cfg.NoticeSigner, cfg.NoticeObserver = headerSigner{}, obs
		cfg.LookupMX = func(context.Context, string) ([]*net.MX, error) {
			return []*net.MX{{Host: mxHost + ".", Pref: 10}}, nil
		}
		cfg.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, sink.Addr)
		}
		if edit != nil {
			edit(cfg)
		}
	})
	return e, obs
}

func submitNotice(t *testing.T, e *env, to string) string {
	t.Helper()
	id, err := e.r.Submit(t.Context(), relay.Envelope{From: "bounce+N1.0@relay.nhs.example", Recipients: []string{to},
		Kind: relay.KindNotice}, strings.NewReader(message("Your appointment", "n1")))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestNoticeGoesToTheInternetSignedOverSTARTTLS(t *testing.T) {
	t.Parallel()
	srvTLS, _ := certstest.ServerTLS(t) // a certificate that does not verify for mx.example.org
	sink := relaytest.Start(t, relaytest.Options{TLS: srvTLS, RequireTLS: true})
	e, obs := noticeEnv(t, sink, "mx.example.org", nil)
	id := submitNotice(t, e, "patient@example.org")
	msgs := sink.WaitMessages(t, 1)
	e.waitGone(t, id)
	if !msgs[0].TLS || !strings.HasPrefix(string(msgs[0].Data), "X-Test-Signed: yes\r\n") {
		t.Fatalf("sink got TLS=%v data %q, want STARTTLS and the signer's header first", msgs[0].TLS, msgs[0].Data[:40])
	}
	o := obs.wait(t, 1)
	if o[0].Outcome != "delivered" || o[0].QueueID != id || o[0].From != "bounce+N1.0@relay.nhs.example" {
		t.Fatalf("outcome = %+v, want delivered for %s", o[0], id)
	}
	if box := e.mailbox(t, sender); len(box) != 0 {
		t.Fatalf("notice mail made %d DSNs, want none", len(box))
	}
}

func TestNoticeNeverInClear(t *testing.T) {
	t.Parallel()
	sink := relaytest.Start(t, relaytest.Options{}) // no STARTTLS offered
	e, obs := noticeEnv(t, sink, "mx.example.org", nil)
	submitNotice(t, e, "patient@example.org")
	o := obs.wait(t, 1)
	if o[0].Outcome != "deferred" || !strings.Contains(o[0].Text, "STARTTLS") || len(sink.Messages()) != 0 {
		t.Fatalf("outcome %+v, sink %d messages; want deferred for want of STARTTLS, nothing sent", o[0], len(sink.Messages()))
	}
}

func TestClinicalMailStillRefusedOutsideDirectory(t *testing.T) {
	t.Parallel()
	srvTLS, _ := certstest.ServerTLS(t)
	sink := relaytest.Start(t, relaytest.Options{TLS: srvTLS})
	e, _ := noticeEnv(t, sink, "mx.example.org", nil)
	id := e.submit(t, sender, []string{"patient@example.org"}, message("clinical", "c1"))
	e.waitGone(t, id)
	if len(sink.Messages()) != 0 {
		t.Fatal("clinical mail left for an address outside the directory")
	}
	d := parseDSN(t, []byte(e.waitMailbox(t, sender, 1)[0]))
	if d.Recipients[0].Status != "5.1.1" {
		t.Fatalf("DSN status %s, want 5.1.1", d.Recipients[0].Status)
	}
}

func TestNoticeNotToDirectoryEndpoints(t *testing.T) {
	t.Parallel()
	srvTLS, _ := certstest.ServerTLS(t)
	sink := relaytest.Start(t, relaytest.Options{TLS: srvTLS})
	e, obs := noticeEnv(t, sink, "mx.example.org", nil)
	submitNotice(t, e, sender)
	o := obs.wait(t, 1)
	if o[0].Outcome != "failed" || o[0].Status != "5.7.1" {
		t.Fatalf("outcome %+v, want failed 5.7.1", o[0])
	}
}

func TestNoticeKindRules(t *testing.T) {
	t.Parallel()
	e := start(t, newDir(), nil)
	for _, env := range []relay.Envelope{
		{From: "a@b.example", Recipients: []string{"p@example.org"}, Kind: "fax"},
		{From: "", Recipients: []string{"p@example.org"}, Kind: relay.KindNotice, System: true},
		{From: "a@b.example", Recipients: []string{"p@example.org"}, Kind: relay.KindNotice, Inbound: true},
	} {
		if _, err := e.r.Submit(t.Context(), env, strings.NewReader(message("x", "y"))); err == nil {
			t.Errorf("Submit(%+v) accepted, want ErrBadKind", env)
		}
	}
}

func TestNoticeMTASTSEnforce(t *testing.T) {
	t.Parallel()
	srvTLS, pool := certstest.ServerTLS(t) // verifies for "localhost"
	sink := relaytest.Start(t, relaytest.Options{TLS: srvTLS, RequireTLS: true})
	t.Run("MXNotInPolicy", func(t *testing.T) {
		t.Parallel()
		e, obs := noticeEnv(t, sink, "localhost", func(c *relay.Config) {
			c.RootCAs, c.MTASTS = pool, stsPolicy{&relay.MTASTSPolicy{Mode: "enforce", MX: []string{"*.example.org"}}}
		})
		submitNotice(t, e, "patient@example.org")
		if o := obs.wait(t, 1); o[0].Outcome != "deferred" || !strings.Contains(o[0].Text, "MTA-STS") {
			t.Fatalf("outcome %+v, want deferred: MX not in the policy", o[0])
		}
	})
	t.Run("CertificateMustVerify", func(t *testing.T) {
		t.Parallel()
		e, obs := noticeEnv(t, sink, "localhost", func(c *relay.Config) { // pool not set: the sink's CA is unknown
			c.MTASTS = stsPolicy{&relay.MTASTSPolicy{Mode: "enforce", MX: []string{"localhost"}}}
		})
		submitNotice(t, e, "patient@example.org")
		if o := obs.wait(t, 1); o[0].Outcome != "deferred" || !strings.Contains(o[0].Text, "could not be verified") {
			t.Fatalf("outcome %+v, want deferred: certificate not verified", o[0])
		}
	})
	t.Run("Verified", func(t *testing.T) {
		t.Parallel()
		e, obs := noticeEnv(t, sink, "localhost", func(c *relay.Config) {
			c.RootCAs, c.MTASTS = pool, stsPolicy{&relay.MTASTSPolicy{Mode: "enforce", MX: []string{"localhost"}}}
		})
		submitNotice(t, e, "patient@example.org")
		if o := obs.wait(t, 1); o[0].Outcome != "delivered" {
			t.Fatalf("outcome %+v, want delivered", o[0])
		}
	})
}

func TestNoticeRateLimitPerDomain(t *testing.T) {
	t.Parallel()
	srvTLS, _ := certstest.ServerTLS(t)
	sink := relaytest.Start(t, relaytest.Options{TLS: srvTLS})
	e, obs := noticeEnv(t, sink, "mx.example.org", func(c *relay.Config) {
		c.NoticeRatePerDomain, c.NoticeBurst = 1, 2 // the fake clock stands still: no token comes back
	})
	for range 3 {
		submitNotice(t, e, "patient@example.org")
	}
	o := obs.wait(t, 3)
	var delivered, limited int
	for _, x := range o {
		switch {
		case x.Outcome == "delivered":
			delivered++
		case x.Outcome == "deferred" && strings.Contains(x.Text, "rate limit for example.org"):
			limited++
		}
	}
	if delivered != 2 || limited != 1 {
		t.Fatalf("delivered %d, rate-limited %d; want 2 and 1 (burst 2): %+v", delivered, limited, o)
	}
}

// Notice mail the observer does not take (an SMTP notice account's) gets
// a DSN to its sender when it fails, as any mail does.
func TestNoticeNotHandledGetsDSN(t *testing.T) {
	t.Parallel()
	srvTLS, _ := certstest.ServerTLS(t)
	sink := relaytest.Start(t, relaytest.Options{TLS: srvTLS})
	sink.SetRcpt(func(string) error {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	})
	e, _ := noticeEnv(t, sink, "mx.example.org", nil)
	id, err := e.r.Submit(t.Context(), relay.Envelope{From: sender, Recipients: []string{"patient@example.org"},
		Kind: relay.KindNotice, Account: "riverside-pas"}, strings.NewReader(message("Your appointment", "n2")))
	if err != nil {
		t.Fatal(err)
	}
	e.waitGone(t, id)
	d := parseDSN(t, e.waitMailbox(t, sender, 1)[0])
	if d.Recipients[0].Status != "5.1.1" {
		t.Fatalf("DSN status %s, want 5.1.1", d.Recipients[0].Status)
	}
}
