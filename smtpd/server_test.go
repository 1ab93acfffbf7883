package smtpd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"nhsrelay/directory"
)

func TestSubmissionSTARTTLSAuth(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	c := ts.submitClient(t)
	got, err := send(c, own, []string{remote, hosted}, message(own))
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	if got != "2.0.0 Ok: queued as Q0001" {
		t.Errorf("DATA reply = %q, want Ok: queued as Q0001", got)
	}
	msgs := ts.queue.all()
	if len(msgs) != 1 {
		t.Fatalf("queued %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.env.From != own || m.env.Account != user || m.env.Inbound || m.env.ClientIP != "127.0.0.1" ||
		strings.Join(m.env.Recipients, ",") != remote+","+hosted {
		t.Errorf("envelope = %+v", m.env)
	}
	if !strings.HasPrefix(m.body, "Received: from localhost ([127.0.0.1])\r\n\tby relay.nhs.example (nhsrelay) with ESMTPSA id ") {
		t.Errorf("body does not start with our Received header:\n%s", m.body)
	}
	if !strings.HasSuffix(m.body, message(own)) {
		t.Errorf("body does not end with the message as sent:\n%s", m.body)
	}
}

func TestSubmissionImplicitTLSLogin(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	c, err := smtp.DialTLS(ts.subs, ts.tlsConfig())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Errorf("STARTTLS offered inside implicit TLS")
	}
	if !c.SupportsAuth("PLAIN") || !c.SupportsAuth("LOGIN") {
		t.Errorf("AUTH PLAIN LOGIN not offered over implicit TLS")
	}
	if err := c.Auth(sasl.NewLoginClient(user, pass)); err != nil {
		t.Fatalf("AUTH LOGIN: %v", err)
	}
	if _, err := send(c, own, []string{remote}, message(own)); err != nil {
		t.Fatalf("send: %v", err)
	}
	if msgs := ts.queue.all(); len(msgs) != 1 || !strings.Contains(msgs[0].body, "with ESMTPSA") {
		t.Fatalf("queued %+v", msgs)
	}
}

func TestAuthRefusedBeforeTLS(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	rc := greeted(t, ts.sub)
	rc.send("EHLO client.example\r\n")
	ehlo := strings.Join(rc.replyAll(), "\n")
	if strings.Contains(ehlo, "AUTH") || !strings.Contains(ehlo, "STARTTLS") {
		t.Errorf("EHLO before TLS:\n%s\nwant STARTTLS and no AUTH", ehlo)
	}
	rc.want("AUTH PLAIN AGdwLWE4MTAwMQBwYXNz", "538 5.7.11 ")
	rc.want("MAIL FROM:<"+own+">", "530 5.7.0 Must issue a STARTTLS")
	rc.want("RCPT TO:<"+remote+">", "503 5.5.1 send MAIL FROM first") // no transaction was opened
	rc.startTLS(ts)
	rc.send("EHLO client.example\r\n")
	if ehlo := strings.Join(rc.replyAll(), "\n"); !strings.Contains(ehlo, "AUTH PLAIN LOGIN") {
		t.Errorf("EHLO after TLS:\n%s\nwant AUTH PLAIN LOGIN", ehlo)
	}
	rc.want("MAIL FROM:<"+own+">", "530 5.7.0 Authentication required")
	if n := len(ts.queue.all()); n != 0 {
		t.Errorf("queued %d", n)
	}
}

func TestMailBeforeAuthGoClient(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	c, err := smtp.DialStartTLS(ts.sub, ts.tlsConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wantReply(t, c.Mail(own, nil), 530, "5.7.0")
}

func TestAuthFailures(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *Config) { c.MaxAuthFailures = 2 })
	auth := func() string {
		rc := ts.dialTLSRaw(t)
		defer rc.c.Close()
		rc.cmd("EHLO client.example")
		return rc.cmd("AUTH PLAIN " + plainIR(user, "wrong"))
	}
	for i := range 2 {
		if got := auth(); !strings.HasPrefix(got, "535 5.7.8 ") {
			t.Fatalf("failure %d: %q, want 535 5.7.8", i+1, got)
		}
	}
	if got := auth(); !strings.HasPrefix(got, "454 4.7.0 too many failed") {
		t.Fatalf("after the limit: %q, want 454 4.7.0", got)
	}
	// An internal failure is temporary and says nothing of the cause.
	ts2 := startServer(t, func(c *Config) {
		c.Directory = fakeDir{authErr: errors.New("redis: dial /run/redis.sock: refused")}
	})
	c, err := smtp.DialTLS(ts2.subs, ts2.tlsConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	se := wantReply(t, c.Auth(sasl.NewPlainClient("", user, pass)), 454, "4.7.0")
	if strings.Contains(se.Message, "redis") {
		t.Errorf("internal text leaked: %q", se.Message)
	}
}

// TestNoOpenRelay tries every path that must not relay.
func TestNoOpenRelay(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	trusted := startServer(t, func(c *Config) { c.TrustedNetworks = loopback })
	for _, tc := range []struct {
		name, addr string
		steps      []string // command, then wanted reply prefix
	}{
		{"mx external recipient", ts.mx, []string{"MAIL FROM:<a@b.example>", "250 ", "RCPT TO:<" + external + ">", "550 5.1.1 "}},
		{"mx remote verified endpoint", ts.mx, []string{"MAIL FROM:<a@b.example>", "250 ", "RCPT TO:<" + remote + ">", "550 5.7.1 relaying denied"}},
		{"mx spoofed local sender", ts.mx, []string{"MAIL FROM:<" + own + ">", "250 ", "RCPT TO:<" + remote + ">", "550 5.7.1 relaying denied"}},
		{"mx source route", ts.mx, []string{"MAIL FROM:<a@b.example>", "250 ", "RCPT TO:<@" + "relay.nhs.example:" + external + ">", "550 5.1.1 "}},
		{"mx percent hack", ts.mx, []string{"MAIL FROM:<a@b.example>", "250 ", "RCPT TO:<someone%gmail.example@nhs.example>", "550 5.1.1 "}},
		{"mx AUTH", ts.mx, []string{"AUTH PLAIN " + plainIR(user, pass), "502 5.5.1 "}},
		{"submission no auth", ts.sub, []string{"MAIL FROM:<" + own + ">", "530 5.7.0 ", "RCPT TO:<" + external + ">", "503 5.5.1 "}},
		{"submission null sender", ts.sub, []string{"MAIL FROM:<>", "530 5.7.0 "}},
		{"trusted unknown recipient", trusted.mx, []string{"MAIL FROM:<a@b.example>", "250 ", "RCPT TO:<" + external + ">", "550 5.1.1 "}},
		{"trusted submission unknown recipient", trusted.sub, []string{"MAIL FROM:<a@b.example>", "250 ", "RCPT TO:<" + external + ">", "550 5.1.1 "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := greeted(t, tc.addr)
			rc.want("EHLO client.example", "250 ")
			for i := 0; i < len(tc.steps); i += 2 {
				rc.want(tc.steps[i], tc.steps[i+1])
			}
		})
	}
	t.Run("submission spoofed MAIL FROM", func(t *testing.T) {
		t.Parallel()
		c := ts.submitClient(t)
		se := wantReply(t, c.Mail(other, nil), 553, "5.7.1")
		if !strings.Contains(se.Message, "not owned by user "+user) {
			t.Errorf("reply %q does not say why", se.Message)
		}
		wantReply(t, c.Mail("", nil), 553, "5.7.1")
		wantReply(t, c.Rcpt(external, nil), 503, "5.5.1")
	})
	t.Run("submission external recipient", func(t *testing.T) {
		t.Parallel()
		c := ts.submitClient(t)
		_, err := send(c, own, []string{external}, message(own))
		wantReply(t, err, 550, "5.1.1")
	})
	t.Run("trusted relays to verified endpoints", func(t *testing.T) {
		t.Parallel()
		c, err := smtp.Dial(trusted.mx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := send(c, "filter@relay.nhs.example", []string{remote}, message("x@y.example")); err != nil {
			t.Fatalf("trusted send: %v", err)
		}
	})
	t.Run("mx hosted recipient accepted", func(t *testing.T) {
		t.Parallel()
		c, err := smtp.DialStartTLS(ts.mx, ts.tlsConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := send(c, "", []string{hosted}, message("mailer-daemon@trust.nhs.example")); err != nil {
			t.Fatalf("mx send: %v", err)
		}
	})
	t.Cleanup(func() {
		for _, m := range ts.queue.all() {
			if len(m.env.Recipients) != 1 || m.env.Recipients[0] != hosted || !m.env.Inbound {
				t.Errorf("relayed through MX: %+v", m.env)
			}
			if !strings.Contains(m.body, "with ESMTPS id") {
				t.Errorf("MX over STARTTLS not recorded as ESMTPS:\n%s", m.body)
			}
		}
	})
}

func TestFromHeader(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	for _, tc := range []struct {
		name   string
		header string
		code   int
		enh    string
	}{
		{"spoofed", "From: Boss <" + other + ">\r\n", 553, "5.7.1"},
		{"one of two spoofed", "From: <" + own + ">, <" + other + ">\r\n", 553, "5.7.1"},
		{"spoofed Sender", "From: <" + own + ">\r\nSender: <" + other + ">\r\n", 553, "5.7.1"},
		{"missing", "Subject: no from\r\n", 550, "5.7.1"},
		{"twice", "From: <" + own + ">\r\nFrom: <" + own + ">\r\n", 550, "5.7.1"},
		{"unreadable", "From: <<<\r\n", 550, "5.7.1"},
		{"encoded name", "From: =?koi8-r?B?8NLJ18XU?= <" + own + ">\r\n", 250, ""},
		{"case folded", "From: <" + strings.ToUpper(own) + ">\r\n", 250, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := ts.submitClient(t)
			_, err := send(c, own, []string{remote}, tc.header+"Subject: x\r\n\r\nbody\r\n")
			if tc.code == 250 {
				if err != nil {
					t.Fatalf("send: %v", err)
				}
				return
			}
			wantReply(t, err, tc.code, tc.enh)
		})
	}
}

func TestRecipientPolicy(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	c := ts.submitClient(t)
	if err := c.Mail(own, nil); err != nil {
		t.Fatal(err)
	}
	se := wantReply(t, c.Rcpt("nobody@nhs.example", nil), 550, "5.1.1")
	if strings.Contains(se.Message, "directory:") {
		t.Errorf("internal text leaked: %q", se.Message)
	}
	if want := "<nobody@nhs.example>: no such NHS endpoint in the directory; check the address with the recipient"; se.Message != want {
		t.Errorf("unknown reply = %q, want %q", se.Message, want)
	}
	se = wantReply(t, c.Rcpt(suspended, nil), 550, "5.7.1")
	if !strings.Contains(se.Message, "practice closed on 2024-03-31") || !strings.Contains(se.Message, "B82099") ||
		!strings.HasPrefix(se.Message, "<"+suspended+">: ") || strings.Count(se.Message, "suspended") > 2 {
		t.Errorf("suspended reply %q lacks the address, reason or successor, or repeats itself", se.Message)
	}
}

func TestQueueErrorIs451(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	ts.queue.fail = fmt.Errorf("spool: fsync /var/spool/nhsrelay/Q1.msg: %w", errors.New("input/output error"))
	c := ts.submitClient(t)
	_, err := send(c, own, []string{remote}, message(own))
	se := wantReply(t, err, 451, "4.3.0")
	if strings.Contains(se.Message, "spool") || strings.Contains(se.Message, "/var") {
		t.Errorf("internal text leaked: %q", se.Message)
	}
	if !strings.Contains(se.Message, "quote ") {
		t.Errorf("reply %q gives no reference", se.Message)
	}
}

func TestToReplyNeverLeaks(t *testing.T) {
	t.Parallel()
	s := &Server{cfg: Config{Hostname: "relay.nhs.example", MaxMessageBytes: 10, MaxHeaderBytes: 10}}
	for _, tc := range []struct {
		name string
		err  error
		code int
		enh  smtp.EnhancedCode
	}{
		{"not found", fmt.Errorf("lookup /srv/dir.db: %w", directory.ErrNotFound), 550, smtp.EnhancedCode{5, 1, 1}},
		{"not verified", &directory.NotVerifiedError{Status: directory.StatusPending, Reason: "awaiting challenge"}, 550, smtp.EnhancedCode{5, 7, 1}},
		{"bare LF", fmt.Errorf("queue: %w", ErrBareLineEnding), 554, smtp.EnhancedCode{5, 6, 0}},
		{"too large", fmt.Errorf("queue: %w", smtp.ErrDataTooLarge), 552, smtp.EnhancedCode{5, 3, 4}},
		{"header", fmt.Errorf("queue: %w", ErrHeaderTooLarge), 552, smtp.EnhancedCode{5, 3, 4}},
		{"timeout", fmt.Errorf("queue: %w", ErrDataTimeout), 421, smtp.EnhancedCode{4, 4, 2}},
		{"foreign reply", &smtp.SMTPError{Code: 250, Message: "/etc/shadow"}, 451, smtp.EnhancedCode{4, 3, 0}},
		{"path", errors.New("open /var/spool/nhsrelay/tmp: permission denied"), 451, smtp.EnhancedCode{4, 3, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.toReply(tc.err, "cid1")
			if r.Code != tc.code || r.EnhancedCode != tc.enh {
				t.Errorf("toReply(%v) = %d %v, want %d %v", tc.err, r.Code, r.EnhancedCode, tc.code, tc.enh)
			}
			if r.EnhancedCode[0] != r.Code/100 {
				t.Errorf("class digit %d disagrees with code %d", r.EnhancedCode[0], r.Code)
			}
			if strings.Contains(r.Message, "/") && tc.code != 554 {
				t.Errorf("reply text %q carries a path", r.Message)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	_, err := New(Config{Hostname: "bad host", MaxRecipients: -1})
	for _, want := range []string{"Hostname", "TLS", "Directory", "Queue", "MaxRecipients"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New(bad) error = %v, want it to name %s", err, want)
		}
	}
}

// TestRepliesSayWhatToDo: DESIGN — every refusal is a reply a person can
// act on. Each reply toReply can give (bar the directory's own reason,
// which names the endpoint's state) and the session's fixed refusals say
// what to do next.
func TestRepliesSayWhatToDo(t *testing.T) {
	t.Parallel()
	s := &Server{cfg: Config{Hostname: "relay.nhs.example", MaxMessageBytes: 10, MaxHeaderBytes: 10}}
	actions := []string{"try again", "check ", "use ", "send ", "fix ", "remove ", "correct ", "wrap ",
		"quote ", "log in", "give ", "wait ", "reconnect", "add "}
	replies := map[string]*smtp.SMTPError{
		"protocol":      protocolReply(""),
		"protocol what": protocolReply("commands sent before the reply to EHLO/HELO"),
		"auth required": reply(530, 7, 0, authRequired),
	}
	for name, err := range map[string]error{
		"not found": directory.ErrNotFound, "too large": smtp.ErrDataTooLarge,
		"bare LF": ErrBareLineEnding, "header": ErrHeaderTooLarge, "malformed": ErrHeaderMalformed,
		"long line": smtp.ErrTooLongLine, "timeout": ErrDataTimeout, "protocol error": ErrProtocol,
		"busy": context.DeadlineExceeded, "internal": errors.New("disk full"),
		"From missing":    checkFrom(mustHeader(t, "Subject: x\r\n\r\n"), directory.Account{Addresses: []string{own}}),
		"From unreadable": checkFrom(mustHeader(t, "From: <<<\r\n\r\n"), directory.Account{Addresses: []string{own}}),
		"From spoofed":    checkFrom(mustHeader(t, "From: <"+other+">\r\n\r\n"), directory.Account{Addresses: []string{own}}),
		"From twice":      checkFrom(mustHeader(t, "From: <"+own+">\r\nFrom: <"+own+">\r\n\r\n"), directory.Account{Addresses: []string{own}}),
	} {
		replies[name] = s.toReply(err, "cid1")
	}
	for name, r := range replies {
		ok := false
		for _, a := range actions {
			ok = ok || strings.Contains(strings.ToLower(r.Message), a)
		}
		if !ok {
			t.Errorf("%s: reply %d %q does not say what to do", name, r.Code, r.Message)
		}
	}
}

func mustHeader(t *testing.T, s string) textproto.Header {
	t.Helper()
	h, err := parseHeader([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return h
}
