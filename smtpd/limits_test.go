package smtpd

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

func TestMessageSizeLimit(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *Config) { c.MaxMessageBytes = 4096 })
	c := ts.submitClient(t)
	if size, ok := c.MaxMessageSize(); !ok || size != 4096 {
		t.Errorf("SIZE advertised = %d, %v; want 4096", size, ok)
	}
	big := message(own) + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 100)
	_, err := send(c, own, []string{remote}, big)
	se := wantReply(t, err, 552, "5.3.4")
	if !strings.Contains(se.Message, "4096") {
		t.Errorf("reply %q does not give the limit", se.Message)
	}
	// RFC 1870: a declared SIZE over the limit is refused at MAIL.
	wantReply(t, c.Mail(own, &smtp.MailOptions{Size: 5000}), 552, "5.3.4")
	// The session goes on: a message within the limit is accepted.
	if _, err := send(c, own, []string{remote}, message(own)); err != nil {
		t.Fatalf("send after refusal: %v", err)
	}
	if n := len(ts.queue.all()); n != 1 {
		t.Errorf("queued %d, want 1", n)
	}
}

func TestRecipientLimit(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *Config) { c.MaxRecipients = 2 })
	c := ts.submitClient(t)
	if err := c.Mail(own, nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{remote, hosted} {
		if err := c.Rcpt(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	wantReply(t, c.Rcpt(remote, nil), 452, "4.5.3")
}

func TestHeaderSizeLimit(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *Config) { c.MaxHeaderBytes = 1024 })
	c := ts.submitClient(t)
	long := "From: <" + own + ">\r\n" + strings.Repeat("X-Filler: 0123456789012345678901234567890123456789\r\n", 30) + "\r\nbody\r\n"
	_, err := send(c, own, []string{remote}, long)
	se := wantReply(t, err, 552, "5.3.4")
	if !strings.Contains(se.Message, "header") {
		t.Errorf("reply %q does not say the header is too large", se.Message)
	}
	// A header just under the limit with a long body passes.
	if _, err := send(c, own, []string{remote}, message(own)+strings.Repeat("body line\r\n", 500)); err != nil {
		t.Fatalf("send: %v", err)
	}
}

func TestConnectionLimits(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *Config) { c.MaxConnsPerIP = 2 })
	for range 2 {
		greeted(t, ts.mx)
	}
	rc := dialRaw(t, ts.mx)
	if got := rc.reply(); !strings.HasPrefix(got, "421 4.7.0 relay.nhs.example too many connections from your address") {
		t.Fatalf("third connection: %q, want 421 4.7.0", got)
	}
	if !rc.closed() {
		t.Error("refused connection left open")
	}
	// The limit counts all listeners.
	if got := dialRaw(t, ts.sub).reply(); !strings.HasPrefix(got, "421 4.7.0 ") {
		t.Fatalf("on submission: %q, want 421 4.7.0", got)
	}

	total := startServer(t, func(c *Config) { c.MaxConns = 1; c.TrustedNetworks = loopback })
	greeted(t, total.sub)
	if got := dialRaw(t, total.mx).reply(); !strings.HasPrefix(got, "421 4.7.0 relay.nhs.example too many connections,") {
		t.Fatalf("over MaxConns: %q, want 421 4.7.0", got)
	}
}

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *Config) { c.IdleTimeout = 100 * time.Millisecond })
	rc := greeted(t, ts.mx)
	if got := rc.reply(); !strings.HasPrefix(got, "421 4.4.2 ") {
		t.Fatalf("idle client got %q, want 421 4.4.2", got)
	}
	if !rc.closed() {
		t.Error("idle connection left open")
	}
}

func TestDataTimeout(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *Config) { c.DataTimeout = 100 * time.Millisecond })
	rc := greeted(t, ts.mx)
	rc.want("EHLO client.example", "250 ")
	rc.want("MAIL FROM:<a@b.example>", "250 ")
	rc.want("RCPT TO:<"+hosted+">", "250 ")
	rc.want("DATA", "354 ")
	rc.send("Subject: slow\r\n\r\nthe rest never comes")
	if got := rc.reply(); !strings.HasPrefix(got, "421 4.4.2 relay.nhs.example timeout") {
		t.Fatalf("stalled DATA got %q, want 421 4.4.2", got)
	}
	if !rc.closed() {
		t.Error("connection left open after a DATA timeout")
	}
	if n := len(ts.queue.all()); n != 0 {
		t.Errorf("queued %d", n)
	}
}

func TestErrorLimit(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *Config) { c.MaxErrors = 3 })
	rc := greeted(t, ts.mx)
	rc.want("EHLO client.example", "250 ")
	rc.want("MAIL FROM:<a@b.example>", "250 ")
	rc.want("RCPT TO:<a@gmail.example>", "550 5.1.1 ")
	rc.want("RCPT TO:<b@gmail.example>", "550 5.1.1 ")
	rc.want("RCPT TO:<c@gmail.example>", "421 4.7.0 relay.nhs.example too many errors")
	if !rc.closed() {
		t.Error("connection left open after the error limit")
	}
}

func TestJunkCommandLimit(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *Config) { c.MaxJunkCommands = 5 })
	for _, addr := range []string{ts.mx, ts.sub} {
		rc := greeted(t, addr)
		var got string
		for range 10 {
			if got = rc.cmd("NOOP"); !strings.HasPrefix(got, "250 ") {
				break
			}
		}
		if !strings.HasPrefix(got, "421 4.7.0 relay.nhs.example too many commands") {
			t.Fatalf("after NOOPs: %q, want 421 4.7.0", got)
		}
	}
	// Over TLS, where the server cannot read the commands itself.
	rc := ts.dialTLSRaw(t)
	var got string
	for range 10 {
		if got = rc.cmd("RSET"); !strings.HasPrefix(got, "250 ") {
			break
		}
	}
	if !strings.HasPrefix(got, "421 4.7.0 ") {
		t.Fatalf("after RSETs over TLS: %q, want 421 4.7.0", got)
	}
}

func TestShutdownClosesIdleSessions(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	idle := greeted(t, ts.sub)
	busy := ts.dialTLSRaw(t)
	busy.want("EHLO client.example", "250 ")
	busy.want("AUTH PLAIN "+plainIR(user, pass), "235 ")
	busy.want("MAIL FROM:<"+own+">", "250 ")

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done <- ts.srv.Shutdown(ctx)
	}()
	if got := idle.reply(); !strings.HasPrefix(got, "421 4.") {
		t.Errorf("idle session got %q, want 421", got)
	}
	// The session in a transaction may finish it.
	busy.want("RCPT TO:<"+remote+">", "250 ")
	busy.want("DATA", "354 ")
	busy.send(message(own) + ".\r\n")
	if got := busy.reply(); !strings.HasPrefix(got, "250 2.0.0 Ok: queued as ") {
		t.Errorf("in-flight message: %q", got)
	}
	if got := busy.reply(); !strings.HasPrefix(got, "421 4.3.2 relay.nhs.example service shutting down") {
		t.Errorf("after its transaction: %q, want 421 4.3.2", got)
	}
	if !busy.closed() {
		t.Error("session left open after its transaction during shutdown")
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}
