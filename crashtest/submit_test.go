package crashtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// account is the sample sender `nhsrelay init` creates (its password is
// printed once, and read from that output).
type account struct {
	user, pass, from string
}

// startSubmit runs n Go senders that submit as acct over STARTTLS with
// AUTH PLAIN, as a GP's mail client does; the hosted variant needs them:
// mail reaching a hosted Maildir must be S/MIME unless an authenticated
// account submitted it here, and smtp-source does neither TLS nor AUTH.
// Each sends msgs messages, a connection each, to "<seq><prefix><i>@domain"
// (the token, as smtp-source -N would make it), records how far each got
// in s exactly as follow does for smtp-source, and stops at the first
// connection failure (the relay died), as smtp-source does.
func (s *senders) startSubmit(t *testing.T, ctx context.Context, addr, caFile string, acct account,
	prefix, domain string, n, msgs int) {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatalf("read relay CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s: no certificates", caFile)
	}
	tlsConf := &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	for i := range n {
		s.alive.Add(1)
		s.wg.Go(func() {
			defer s.alive.Add(-1)
			for seq := 1; seq <= msgs && ctx.Err() == nil; seq++ {
				token := fmt.Sprintf("%d%s%02d@%s", seq, prefix, i, domain)
				if err := s.submitOne(addr, tlsConf, acct, token); err != nil {
					s.mu.Lock()
					s.fatals = append(s.fatals, fmt.Sprintf("%s: %v", token, err))
					s.mu.Unlock()
					return
				}
			}
		})
	}
}

// submitOne sends one message to token. A refusal of the message itself
// is recorded and is not an error; anything that breaks the session is.
func (s *senders) submitOne(addr string, tlsConf *tls.Config, acct account, token string) error {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	c, err := smtp.NewClientStartTLS(conn, tlsConf)
	if err != nil {
		conn.Close()
		return fmt.Errorf("STARTTLS: %w", err)
	}
	defer c.Close()
	c.CommandTimeout, c.SubmissionTimeout = time.Minute, time.Minute
	if err := c.Auth(sasl.NewPlainClient("", acct.user, acct.pass)); err != nil {
		return fmt.Errorf("AUTH: %w", err)
	}
	if err := c.Mail(acct.from, nil); err != nil {
		return fmt.Errorf("MAIL: %w", err)
	}
	if err := c.Rcpt(token, nil); err != nil {
		return fmt.Errorf("RCPT: %w", err)
	}
	s.set(token, rcptSent)
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	msg := fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: crash test %s\r\nMessage-ID: <%s.crash@localhost>\r\n\r\n%s",
		acct.from, token, token, strings.ReplaceAll(token, "@", "."), bytes.Repeat([]byte("clinical letter text, line of 42 octets.\r\n"), 50))
	if _, err := w.Write([]byte(msg)); err != nil {
		return fmt.Errorf("DATA body: %w", err) // the message never ended: rcptSent stands
	}
	// From here the final "." may have gone out: a reply decides, and
	// without one the message is in doubt.
	s.set(token, dotSent)
	if err := w.Close(); err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			s.set(token, refused)
			s.mu.Lock()
			s.refusedWith[token] = fmt.Sprintf("%d %d.%d.%d", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
			s.mu.Unlock()
			return nil
		}
		return fmt.Errorf("end of DATA: %w", err)
	}
	s.set(token, acked)
	s.acks.Add(1)
	c.Quit()
	return nil
}

// relayCA is the development CA `nhsrelay init` made, which signed the
// relay's TLS certificate.
func (r *relayProc) relayCA() string { return filepath.Join(r.dir, "ca", "ca.crt") }
