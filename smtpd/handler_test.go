package smtpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"nhsrelay/certs/certstest"
	"nhsrelay/relay"
)

// Addresses the recording handlers take; the directory fake knows neither.
const (
	verifyAddr = "verify@relay.nhs.example"
	faxAddr    = "fax=+441632960123@relay.nhs.example"
)

// recHandler records what it is given. By default it reads the whole body
// and answers "handled"; result and skipRead change that.
type recHandler struct {
	addrs     []string // accepted, case-insensitively
	skipRead  bool     // return without reading body (breaks the contract)
	ignoreErr bool     // answer success even if reading failed (a bug)
	result    func(body string) (string, error)

	mu  sync.Mutex
	got []handled
}

type handled struct {
	env  relay.Envelope
	body string
	err  error // from reading body
}

func (h *recHandler) Accepts(addr string) bool {
	for _, a := range h.addrs {
		if strings.EqualFold(a, addr) {
			return true
		}
	}
	return false
}

func (h *recHandler) Handle(ctx context.Context, env relay.Envelope, body io.Reader) (string, error) {
	var b []byte
	var err error
	if !h.skipRead {
		b, err = io.ReadAll(body)
	}
	h.mu.Lock()
	h.got = append(h.got, handled{env: env, body: string(b), err: err})
	h.mu.Unlock()
	if err != nil && !h.ignoreErr {
		return "", fmt.Errorf("recording handler: read: %w", err)
	}
	if h.result != nil {
		return h.result(string(b))
	}
	return "handled", nil
}

func (h *recHandler) all() []handled {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]handled(nil), h.got...)
}

func withHandlers(hs ...RecipientHandler) func(*Config) {
	return func(c *Config) { c.Handlers = hs }
}

func verifyMessage(from string) string {
	return "From: <" + from + ">\r\nTo: <" + verifyAddr + ">\r\nSubject: Re: code\r\n\r\nK7QXM-2HVPA\r\n"
}

func dialMX(t *testing.T, ts *testServer) *smtp.Client {
	t.Helper()
	c, err := smtp.DialStartTLS(ts.mx, ts.tlsConfig())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestHandlerTakesItsRecipients: a handler's recipient needs no directory
// entry, on MX and on submission, and its message goes to the handler,
// not the queue, with our Received: header; the 250 carries its text.
func TestHandlerTakesItsRecipients(t *testing.T) {
	t.Parallel()
	h := &recHandler{addrs: []string{verifyAddr}}
	ts := startServer(t, withHandlers(h))

	c := dialMX(t, ts)
	text, err := send(c, "gp.b82001@nhs.example", []string{"VERIFY@relay.nhs.example"}, verifyMessage("gp.b82001@nhs.example"))
	if err != nil {
		t.Fatalf("send on MX: %v", err)
	}
	if text != "2.0.0 handled" {
		t.Errorf("250 text = %q, want the handler's %q", text, "2.0.0 handled")
	}
	sub := ts.submitClient(t)
	if _, err := send(sub, own, []string{verifyAddr}, verifyMessage(own)); err != nil {
		t.Fatalf("send on submission: %v", err)
	}

	got := h.all()
	if len(got) != 2 {
		t.Fatalf("handler got %d messages, want 2", len(got))
	}
	mx, sm := got[0], got[1]
	if mx.env.From != "gp.b82001@nhs.example" || len(mx.env.Recipients) != 1 || mx.env.Recipients[0] != "VERIFY@relay.nhs.example" ||
		!mx.env.Inbound || mx.env.Account != "" || mx.env.ClientIP != "127.0.0.1" {
		t.Errorf("MX envelope = %+v", mx.env)
	}
	if !strings.HasPrefix(mx.body, "Received: from ") || !strings.HasSuffix(mx.body, verifyMessage("gp.b82001@nhs.example")) {
		t.Errorf("MX body = %q, want Received: then the message", mx.body)
	}
	if sm.env.Account != user || sm.env.From != own {
		t.Errorf("submission envelope = %+v", sm.env)
	}
	if q := ts.queue.all(); len(q) != 0 {
		t.Errorf("queue got %d messages for a handler", len(q))
	}
	if n := ts.counter(t, "nhsrelay_smtpd_messages_accepted_total", ""); n != 0 {
		t.Errorf("handled messages counted as queued: %v", n)
	}
}

// TestHandlerNotMixed: a transaction is one handler's or the queue's;
// the recipient that would mix them gets 452 4.5.3 (send it separately)
// and the rest of the transaction goes through.
func TestHandlerNotMixed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		rcpts     []string
		refused   int // index of the RCPT answered 452
		toHandler int // messages the verify handler gets
		toQueue   int
	}{
		{"handler then queue", []string{verifyAddr, hosted}, 1, 1, 0},
		{"queue then handler", []string{hosted, verifyAddr}, 1, 0, 1},
		{"two handlers", []string{verifyAddr, faxAddr}, 1, 1, 0},
		{"handler, queue, handler", []string{verifyAddr, hosted, verifyAddr}, 1, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			verify := &recHandler{addrs: []string{verifyAddr}}
			fax := &recHandler{addrs: []string{faxAddr}}
			ts := startServer(t, withHandlers(verify, fax))
			c := dialMX(t, ts)
			if err := c.Mail("a@trust.nhs.example", nil); err != nil {
				t.Fatal(err)
			}
			for i, r := range tc.rcpts {
				err := c.Rcpt(r, nil)
				if i == tc.refused {
					se := wantReply(t, err, 452, "4.5.3")
					if !strings.Contains(se.Message, "separate message") {
						t.Errorf("452 text %q does not say to send it separately", se.Message)
					}
				} else if err != nil {
					t.Fatalf("RCPT %s: %v", r, err)
				}
			}
			w, err := c.Data()
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(w, verifyMessage("a@trust.nhs.example"))
			if err := w.Close(); err != nil {
				t.Fatalf("DATA: %v", err)
			}
			if n := len(verify.all()); n != tc.toHandler {
				t.Errorf("handler got %d messages, want %d", n, tc.toHandler)
			}
			if n := len(fax.all()); n != 0 {
				t.Errorf("second handler got %d messages", n)
			}
			if n := len(ts.queue.all()); n != tc.toQueue {
				t.Errorf("queue got %d messages, want %d", n, tc.toQueue)
			}
			for _, m := range verify.all() {
				for _, r := range m.env.Recipients {
					if r != verifyAddr {
						t.Errorf("handler given recipient %s", r)
					}
				}
			}
		})
	}
	t.Run("one handler, two of its addresses", func(t *testing.T) {
		t.Parallel()
		h := &recHandler{addrs: []string{verifyAddr, faxAddr}}
		ts := startServer(t, withHandlers(h))
		if _, err := send(dialMX(t, ts), "a@trust.nhs.example", []string{verifyAddr, faxAddr}, verifyMessage("a@trust.nhs.example")); err != nil {
			t.Fatal(err)
		}
		if got := h.all(); len(got) != 1 || len(got[0].env.Recipients) != 2 {
			t.Errorf("handler got %+v, want one message for both recipients", got)
		}
	})
}

// TestHandlerReplies: a *HandlerError becomes its reply, on one line; any
// other error is a local error whose text never reaches the wire.
func TestHandlerReplies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		code int
		enh  string
		text string // wanted in the reply
	}{
		{"handler error", fmt.Errorf("wrapped: %w", &HandlerError{Code: 550, Subject: 7, Detail: 1,
			Text: "no verification is pending\r\nfor <x@y>", Err: errors.New("/var/lib/secret")}), 550, "5.7.1", "no verification is pending  for <x@y>"},
		{"temporary handler error", &HandlerError{Code: 451, Subject: 4, Detail: 1, Text: "directory busy, try again later"}, 451, "4.4.1", "try again later"},
		{"class digit derived", &HandlerError{Code: 550, Subject: 6, Detail: 0, Text: "no code"}, 550, "5.6.0", "no code"},
		{"not a refusal code", &HandlerError{Code: 250, Text: "/etc/shadow"}, 451, "4.3.0", "quote "},
		{"no text", &HandlerError{Code: 550, Subject: 7, Detail: 1}, 451, "4.3.0", "quote "},
		{"plain error", errors.New("open /var/lib/nhsrelay/directory.db: permission denied"), 451, "4.3.0", "quote "},
		{"deadline", fmt.Errorf("confirm: %w", context.DeadlineExceeded), 451, "4.4.5", "try again later"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := &recHandler{addrs: []string{verifyAddr}, result: func(string) (string, error) { return "", tc.err }}
			ts := startServer(t, withHandlers(h))
			_, err := send(dialMX(t, ts), "a@trust.nhs.example", []string{verifyAddr}, verifyMessage("a@trust.nhs.example"))
			se := wantReply(t, err, tc.code, tc.enh)
			if !strings.Contains(se.Message, tc.text) {
				t.Errorf("reply %q, want it to contain %q", se.Message, tc.text)
			}
			if strings.Contains(se.Message, "/") {
				t.Errorf("reply %q carries a path", se.Message)
			}
		})
	}
	t.Run("250 text on one line", func(t *testing.T) {
		t.Parallel()
		h := &recHandler{addrs: []string{verifyAddr}, result: func(string) (string, error) { return "confirmed\r\n250 forged", nil }}
		ts := startServer(t, withHandlers(h))
		text, err := send(dialMX(t, ts), "a@trust.nhs.example", []string{verifyAddr}, verifyMessage("a@trust.nhs.example"))
		if err != nil || text != "2.0.0 confirmed  250 forged" {
			t.Errorf("send = %q, %v; want the text on one line", text, err)
		}
	})
}

// TestHandlerGetsCheckedData: a handler's message meets every check queued
// mail does, and smtpd's reply wins even over a handler that ignores the
// failed read or does not read at all.
func TestHandlerGetsCheckedData(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		h    *recHandler
		edit func(*Config)
		msg  string
		code int
		enh  string
	}{
		{"bare LF", &recHandler{}, nil, "From: <a@trust.nhs.example>\r\n\r\nline\nsmuggled\r\n", 554, "5.6.0"},
		{"bare LF, handler ignores the error", &recHandler{ignoreErr: true}, nil, "From: <a@trust.nhs.example>\r\n\r\nline\nsmuggled\r\n", 554, "5.6.0"},
		{"bare LF, handler does not read", &recHandler{skipRead: true}, nil, "From: <a@trust.nhs.example>\r\n\r\nline\nsmuggled\r\n", 554, "5.6.0"},
		{"header too large", &recHandler{}, func(c *Config) { c.MaxHeaderBytes = 64 },
			"From: <a@trust.nhs.example>\r\nSubject: " + strings.Repeat("x", 100) + "\r\n\r\nbody\r\n", 552, "5.3.4"},
		{"header too large, handler ignores the error", &recHandler{ignoreErr: true}, func(c *Config) { c.MaxHeaderBytes = 64 },
			"From: <a@trust.nhs.example>\r\nSubject: " + strings.Repeat("x", 100) + "\r\n\r\nbody\r\n", 552, "5.3.4"},
		{"too large", &recHandler{}, func(c *Config) { c.MaxMessageBytes = 100 },
			"From: <a@trust.nhs.example>\r\n\r\n" + strings.Repeat("long line of text\r\n", 20), 552, "5.3.4"},
		{"too large, handler does not read", &recHandler{skipRead: true}, func(c *Config) { c.MaxMessageBytes = 100 },
			"From: <a@trust.nhs.example>\r\n\r\n" + strings.Repeat("long line of text\r\n", 20), 552, "5.3.4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.h.addrs = []string{verifyAddr}
			edit := func(c *Config) {
				c.Handlers = []RecipientHandler{tc.h}
				if tc.edit != nil {
					tc.edit(c)
				}
			}
			ts := startServer(t, edit)
			rc := greeted(t, ts.mx)
			rc.want("EHLO client.example", "250 ")
			rc.want("MAIL FROM:<a@trust.nhs.example>", "250 ")
			rc.want("RCPT TO:<"+verifyAddr+">", "250 ")
			rc.want("DATA", "354 ")
			rc.send(tc.msg)
			got := rc.cmd(".")
			if want := fmt.Sprintf("%d %s ", tc.code, tc.enh); !strings.HasPrefix(got, want) {
				t.Fatalf("end of data → %q, want %q", got, want)
			}
		})
	}
	t.Run("handler does not read a good message", func(t *testing.T) {
		t.Parallel()
		h := &recHandler{addrs: []string{verifyAddr}, skipRead: true}
		ts := startServer(t, withHandlers(h))
		if _, err := send(dialMX(t, ts), "a@trust.nhs.example", []string{verifyAddr}, verifyMessage("a@trust.nhs.example")); err != nil {
			t.Errorf("send: %v (smtpd finishes the checks and answers the handler's success)", err)
		}
	})
	t.Run("submission From: header still checked", func(t *testing.T) {
		t.Parallel()
		h := &recHandler{addrs: []string{verifyAddr}}
		ts := startServer(t, withHandlers(h))
		_, err := send(ts.submitClient(t), own, []string{verifyAddr}, verifyMessage(other))
		wantReply(t, err, 553, "5.7.1")
	})
}

func TestHandlerConfig(t *testing.T) {
	t.Parallel()
	tlsCfg, _ := certstest.ServerTLS(t)
	_, err := New(Config{Hostname: "relay.nhs.example", TLS: tlsCfg, Directory: fakeDir{}, Queue: &recQueue{},
		Handlers: []RecipientHandler{&recHandler{}, nil}})
	if err == nil || !strings.Contains(err.Error(), "Handlers[1]") {
		t.Errorf("New with a nil handler: error = %v, want it to name Handlers[1]", err)
	}
}
