package challengereply_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"nhsrelay/certs/certstest"
	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
	"nhsrelay/relay"
	"nhsrelay/smtpd"
	"nhsrelay/smtpd/challengereply"
)

const challengeFrom = "verify@relay.nhs.example"

// noQueue fails the test if smtpd queues anything: every message here is
// for the handler.
type noQueue struct{ t *testing.T }

func (q noQueue) Submit(ctx context.Context, env relay.Envelope, body io.Reader) (string, error) {
	q.t.Errorf("queued a message for %v", env.Recipients)
	return "", errors.New("test: no queue")
}

// world is a real directory with pending endpoints and a real smtpd whose
// MX listener has the challenge-reply handler, as cmd wires them.
type world struct {
	dir    *directory.Directory
	mailer *directorytest.Mailer
	audit  *directorytest.AuditLog
	mx     string
	tls    *tls.Config
}

func newWorld(t *testing.T, endpoints ...string) *world {
	t.Helper()
	w := &world{mailer: &directorytest.Mailer{}, audit: &directorytest.AuditLog{}}
	var eps []directory.Endpoint
	for _, a := range endpoints {
		eps = append(eps, directorytest.Pending(a))
	}
	w.dir = directorytest.Open(t, func(c *directory.Config) {
		c.Mailer, c.Audit, c.ChallengeFrom = w.mailer, w.audit, challengeFrom
	}, eps...)
	h, err := challengereply.New(challengereply.Config{Address: challengeFrom, Directory: w.dir})
	if err != nil {
		t.Fatalf("challengereply.New: %v", err)
	}
	tlsCfg, pool := certstest.ServerTLS(t)
	w.tls = &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	srv, err := smtpd.New(smtpd.Config{Hostname: "relay.nhs.example", TLS: tlsCfg, Directory: w.dir,
		Queue: noQueue{t}, Handlers: []smtpd.RecipientHandler{h}, GreetWait: -1,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatalf("smtpd.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	w.mx = ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln, smtpd.MX) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, smtpd.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return w
}

// challenge starts a challenge for addr and returns the code the
// directory mailed, checking the mail came from the handler's address.
func (w *world) challenge(t *testing.T, addr string) string {
	t.Helper()
	ep, err := w.dir.Lookup(t.Context(), addr)
	if err != nil {
		t.Fatalf("Lookup(%s): %v", addr, err)
	}
	if err := w.dir.StartChallenge(t.Context(), ep.ID); err != nil {
		t.Fatalf("StartChallenge: %v", err)
	}
	var mails []directorytest.Mail // subtests share the mailer: find ours
	for _, m := range w.mailer.Sent() {
		if slices.Contains(m.To, addr) {
			mails = append(mails, m)
		}
	}
	if len(mails) != 1 {
		t.Fatalf("mailer sent %d challenges to %s, want 1", len(mails), addr)
	}
	m := mails[0]
	if m.From != challengeFrom || !slices.Equal(m.To, []string{addr}) {
		t.Fatalf("challenge mail from %s to %v, want from %s to %s", m.From, m.To, challengeFrom, addr)
	}
	return directorytest.Code(m)
}

// send delivers msg over MX with STARTTLS, as the endpoint's relay would.
func (w *world) send(t *testing.T, from, msg string) (string, error) {
	t.Helper()
	c, err := smtp.DialStartTLS(w.mx, w.tls)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if err := c.Mail(from, nil); err != nil {
		return "", err
	}
	if err := c.Rcpt(challengeFrom, nil); err != nil {
		return "", err
	}
	wc, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := io.WriteString(wc, msg); err != nil {
		return "", err
	}
	resp, err := wc.CloseWithResponse()
	if err != nil {
		return "", err
	}
	return resp.StatusText, nil
}

func (w *world) status(t *testing.T, addr string) directory.EndpointStatus {
	t.Helper()
	ep, err := w.dir.Lookup(t.Context(), addr)
	if err != nil {
		t.Fatalf("Lookup(%s): %v", addr, err)
	}
	return ep.Status
}

func wantReply(t *testing.T, err error, code int, enh, text string) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("error = %v, want SMTP reply %d %s", err, code, enh)
	}
	got := fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
	if se.Code != code || got != enh || !strings.Contains(se.Message, text) {
		t.Fatalf("reply = %d %s %q, want %d %s containing %q", se.Code, got, se.Message, code, enh, text)
	}
}

// reply is the owner's answer: what they typed, then the challenge quoted
// as mail clients quote it.
func reply(from, typed, code string) string {
	return "From: Dr B <" + from + ">\r\nTo: NHS relay directory <" + challengeFrom + ">\r\n" +
		"Subject: Re: Verification code for " + from + "\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\n" + typed + "\r\n\r\n" +
		"On Mon, 1 Jun 2026, NHS relay directory wrote:\r\n> Verification code: " + code + "\r\n"
}

func TestReplyConfirmsEndToEnd(t *testing.T) {
	t.Parallel()
	const (
		typed   = "gp.typed@nhs.example"
		wrong   = "gp.wrong@nhs.example"
		quoted  = "gp.quoted@nhs.example"
		outlook = "gp.outlook@nhs.example"
		none    = "gp.none@nhs.example"
		auto    = "gp.auto@nhs.example"
		spoofed = "gp.spoofed@nhs.example"
		html    = "gp.html@nhs.example"
	)
	w := newWorld(t, typed, wrong, quoted, outlook, none, auto, spoofed, html)

	t.Run("typed code verifies", func(t *testing.T) {
		t.Parallel()
		code := w.challenge(t, typed)
		text, err := w.send(t, typed, reply(typed, "Yes, this is ours: "+strings.ToLower(code), code))
		if err != nil {
			t.Fatalf("reply refused: %v", err)
		}
		if text != "2.0.0 verification confirmed" {
			t.Errorf("250 text = %q, want 2.0.0 verification confirmed", text)
		}
		ep, err := w.dir.Lookup(t.Context(), typed)
		if err != nil {
			t.Fatal(err)
		}
		if ep.Status != directory.StatusVerified || ep.Verification.Method != directory.MethodChallenge ||
			!strings.Contains(ep.Verification.By, "reply from "+typed) {
			t.Errorf("endpoint after reply: status %s, verification %+v", ep.Status, ep.Verification)
		}
		// A second reply finds no challenge: codes are one-time.
		_, err = w.send(t, typed, reply(typed, code, code))
		wantReply(t, err, 550, "5.7.1", "no verification is pending for <"+typed+">")
	})
	t.Run("wrong code refused, right code then verifies", func(t *testing.T) {
		t.Parallel()
		code := w.challenge(t, wrong)
		_, err := w.send(t, wrong, reply(wrong, "ABCDE-FGHJK", code))
		wantReply(t, err, 550, "5.7.1", "the code does not match; ask your administrator for a new challenge")
		if s := w.status(t, wrong); s != directory.StatusPending {
			t.Fatalf("status after a wrong code = %s, want pending", s)
		}
		if _, err := w.send(t, wrong, reply(wrong, code, code)); err != nil {
			t.Fatalf("right code after a wrong one: %v", err)
		}
		if s := w.status(t, wrong); s != directory.StatusVerified {
			t.Errorf("status = %s, want verified", s)
		}
	})
	t.Run("quoted code refused", func(t *testing.T) {
		t.Parallel()
		code := w.challenge(t, quoted)
		_, err := w.send(t, quoted, reply(quoted, "I did not expect this message.", code))
		wantReply(t, err, 550, "5.6.0", "no verification code found: type the code from the challenge into your reply")
		if s := w.status(t, quoted); s != directory.StatusPending {
			t.Errorf("status = %s, want pending", s)
		}
	})
	t.Run("unquoted copy below Original Message refused", func(t *testing.T) {
		t.Parallel()
		code := w.challenge(t, outlook)
		msg := "From: <" + outlook + ">\r\nSubject: RE: Verification code\r\n\r\nWho is this?\r\n\r\n" +
			"-----Original Message-----\r\nFrom: NHS relay directory <" + challengeFrom + ">\r\n\r\n" +
			"Verification code: " + code + "\r\n"
		_, err := w.send(t, outlook, msg)
		wantReply(t, err, 550, "5.6.0", "no verification code found")
		if s := w.status(t, outlook); s != directory.StatusPending {
			t.Errorf("status = %s, want pending", s)
		}
	})
	t.Run("no challenge refused", func(t *testing.T) {
		t.Parallel()
		_, err := w.send(t, none, reply(none, "ABCDE-FGHJK", "ABCDE-FGHJK"))
		wantReply(t, err, 550, "5.7.1", "no verification is pending for <"+none+">")
		_, err = w.send(t, "stranger@gmail.example", reply("stranger@gmail.example", "ABCDE-FGHJK", "x"))
		wantReply(t, err, 550, "5.7.1", "no verification is pending")
	})
	t.Run("out-of-office with the code refused", func(t *testing.T) {
		t.Parallel()
		code := w.challenge(t, auto)
		msg := strings.Replace(reply(auto, "I am away until Monday. "+code, code), "MIME-Version", "Auto-Submitted: auto-replied\r\nMIME-Version", 1)
		_, err := w.send(t, auto, msg)
		wantReply(t, err, 550, "5.7.1", "automatic reply")
		if s := w.status(t, auto); s != directory.StatusPending {
			t.Errorf("status = %s, want pending", s)
		}
	})
	t.Run("From: header or sender not the endpoint refused", func(t *testing.T) {
		t.Parallel()
		code := w.challenge(t, spoofed)
		_, err := w.send(t, spoofed, reply("someone@gmail.example", code, code))
		wantReply(t, err, 550, "5.7.1", "From: header must be the envelope sender")
		_, err = w.send(t, "", reply(spoofed, code, code))
		wantReply(t, err, 550, "5.7.1", "null sender")
		if s := w.status(t, spoofed); s != directory.StatusPending {
			t.Errorf("status = %s, want pending", s)
		}
		// None of those counted an attempt: the owner's reply still works.
		if _, err := w.send(t, spoofed, reply(spoofed, code, code)); err != nil {
			t.Errorf("owner's reply: %v", err)
		}
	})
	t.Run("HTML reply in base64 verifies", func(t *testing.T) {
		t.Parallel()
		code := w.challenge(t, html)
		body := base64.StdEncoding.EncodeToString([]byte("<html><body><p>Confirmed&nbsp;" + code +
			"</p><blockquote><p>Verification code: " + code + "</p></blockquote></body></html>"))
		msg := "From: <" + html + ">\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"=_b\"\r\n\r\n" +
			"--=_b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" + body + "\r\n--=_b--\r\n"
		if _, err := w.send(t, html, msg); err != nil {
			t.Fatalf("HTML reply: %v", err)
		}
		if s := w.status(t, html); s != directory.StatusVerified {
			t.Errorf("status = %s, want verified", s)
		}
	})
	t.Run("challenge address with an endpoint recipient", func(t *testing.T) {
		t.Parallel()
		c, err := smtp.DialStartTLS(w.mx, w.tls)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Mail(none, nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt(challengeFrom, nil); err != nil {
			t.Fatal(err)
		}
		wantReply(t, c.Rcpt(typed, nil), 452, "4.5.3", "separate message")
	})
}
