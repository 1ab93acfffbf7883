package relaytest

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"nhsrelay/certs/certstest"
)

func TestSinkTLSAndReplies(t *testing.T) {
	t.Parallel()
	srvTLS, pool := certstest.ServerTLS(t)
	s := Start(t, Options{TLS: srvTLS, RequireTLS: true})
	s.SetRcpt(func(to string) error {
		if strings.HasPrefix(to, "bad") {
			return Reply(550, 1, 1, "no such user")
		}
		return nil
	})
	c, err := smtp.DialStartTLS(s.Addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("DialStartTLS: %v", err)
	}
	defer c.Close()
	if err := c.Mail("a@x", nil); err != nil {
		t.Fatal(err)
	}
	var se *smtp.SMTPError
	if err := c.Rcpt("bad@x", nil); !errors.As(err, &se) || se.Code != 550 {
		t.Fatalf("Rcpt(bad) = %v, want 550", err)
	}
	if err := c.Rcpt("good@x", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("Subject: t\r\n\r\nhi\r\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	msgs := s.WaitMessages(t, 1)
	if m := msgs[0]; m.From != "a@x" || len(m.To) != 1 || m.To[0] != "good@x" || !m.TLS {
		t.Errorf("recorded %+v", m)
	}
	if n := s.Connections(); n != 1 {
		t.Errorf("Connections = %d, want 1", n)
	}
}

func TestSinkRequireTLSRefusesPlain(t *testing.T) {
	t.Parallel()
	srvTLS, _ := certstest.ServerTLS(t)
	s := Start(t, Options{TLS: srvTLS, RequireTLS: true})
	c, err := smtp.Dial(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var se *smtp.SMTPError
	if err := c.Mail("a@x", nil); !errors.As(err, &se) || se.Code != 530 {
		t.Fatalf("Mail before STARTTLS = %v, want 530", err)
	}
}
