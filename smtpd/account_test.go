package smtpd

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// A disable reaches a session that logged in before it at its next MAIL
// or RCPT, and a new login is refused with the reason, after the right
// password only, and without counting towards the failure limit.
func TestAccountDisabled(t *testing.T) {
	t.Parallel()
	disabled := &atomic.Value{}
	ts := startServer(t, func(c *Config) {
		c.Directory = fakeDir{disabled: disabled}
		c.MaxAuthFailures = 2
	})
	c := ts.submitClient(t)
	if _, err := send(c, own, []string{remote}, message(own)); err != nil {
		t.Fatalf("send while active: %v", err)
	}
	if err := c.Mail(own, nil); err != nil {
		t.Fatal(err)
	}
	disabled.Store("left the practice")
	se := wantReply(t, c.Rcpt(remote, nil), 550, "5.7.13")
	if !strings.Contains(se.Message, "account "+user+" is disabled: left the practice") {
		t.Fatalf("RCPT reply = %q", se.Message)
	}
	c.Reset()
	wantReply(t, c.Mail(own, nil), 550, "5.7.13")

	for range 3 { // more than MaxAuthFailures: not counted as failures
		c2, err := smtp.DialTLS(ts.subs, ts.tlsConfig())
		if err != nil {
			t.Fatal(err)
		}
		se = wantReply(t, c2.Auth(sasl.NewPlainClient("", user, pass)), 535, "5.7.13")
		c2.Close()
		if !strings.Contains(se.Message, "left the practice") {
			t.Fatalf("AUTH reply = %q", se.Message)
		}
	}
	c3, err := smtp.DialTLS(ts.subs, ts.tlsConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	se = wantReply(t, c3.Auth(sasl.NewPlainClient("", user, "wrong password")), 535, "5.7.8")
	if strings.Contains(se.Message, "disabled") {
		t.Fatalf("a wrong password learnt the account is disabled: %q", se.Message)
	}

	disabled.Store("")
	c4 := ts.submitClient(t) // enabled again: logs in and sends
	if _, err := send(c4, own, []string{remote}, message(own)); err != nil {
		t.Fatalf("send after enable: %v", err)
	}
}
