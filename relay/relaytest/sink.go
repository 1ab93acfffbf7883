// Package relaytest runs a real SMTP sink on a loopback port for tests of
// delivery, as httptest runs an HTTP server: it records what it accepts,
// answers RCPT and DATA as a test tells it (451, 550, ...), optionally offers
// STARTTLS, and counts connections so tests can check connection reuse.
package relaytest

import (
	"crypto/tls"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is one message the sink accepted.
type Message struct {
	From string
	To   []string
	Data []byte
	TLS  bool // arrived over STARTTLS
	// The DSN parameters (RFC 3461) it came with, when the sink offers
	// DSN: RET and ENVID, and each recipient's NOTIFY (comma-separated)
	// and ORCPT ("type;address").
	Ret, EnvID    string
	Notify, ORcpt map[string]string
}

// Options configure a Sink. Zero value: plain SMTP, every command accepted.
type Options struct {
	// TLS, if set, makes the sink offer STARTTLS with this config.
	TLS *tls.Config
	// RequireTLS makes MAIL before STARTTLS fail with 530 5.7.0.
	RequireTLS bool
	// DSN makes the sink offer the DSN extension (RFC 3461) and record
	// the parameters in each Message.
	DSN bool
}

// Reply decides the answer to a command: nil accepts, an *smtp.SMTPError
// is sent as is.
type (
	RcptFunc func(to string) error
	DataFunc func(from string, to []string, data []byte) error
)

// Sink is a running SMTP server on 127.0.0.1. Its methods are safe for
// concurrent use.
type Sink struct {
	Addr string // "127.0.0.1:port"

	opts  Options
	conns atomic.Int64
	mu    sync.Mutex
	open  []net.Conn
	msgs  []Message
	rcpt  RcptFunc
	data  DataFunc
}

// Start runs a sink until the test ends.
func Start(t testing.TB, opts Options) *Sink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("relaytest: listen: %v", err)
	}
	s := &Sink{Addr: ln.Addr().String(), opts: opts}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{sink: s, conn: c}, nil
	}))
	srv.Domain = "sink.test"
	srv.TLSConfig = opts.TLS
	srv.EnableDSN = opts.DSN
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.MaxMessageBytes = 64 << 20
	srv.MaxRecipients = 1000
	srv.AllowInsecureAuth = false
	srv.ErrorLog = log.New(io.Discard, "", 0) // t.Log after the test ends would panic
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(countingListener{ln, s})
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return s
}

// SetRcpt sets how RCPT is answered from now on (nil: accept).
func (s *Sink) SetRcpt(fn RcptFunc) { s.mu.Lock(); s.rcpt = fn; s.mu.Unlock() }

// SetData sets how the end of DATA is answered from now on (nil: accept).
func (s *Sink) SetData(fn DataFunc) { s.mu.Lock(); s.data = fn; s.mu.Unlock() }

// Messages returns a copy of the messages accepted so far.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Connections is how many TCP connections the sink has accepted.
func (s *Sink) Connections() int { return int(s.conns.Load()) }

// DropConnections closes every connection accepted so far without a
// reply, as a server restarting or timing out idle clients would.
func (s *Sink) DropConnections() {
	s.mu.Lock()
	open := s.open
	s.open = nil
	s.mu.Unlock()
	for _, c := range open {
		c.Close()
	}
}

// WaitMessages polls until the sink holds at least n messages or the
// bounded deadline passes, then returns what it holds.
func (s *Sink) WaitMessages(t testing.TB, n int) []Message {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		msgs := s.Messages()
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("relaytest: sink has %d messages, want %d", len(msgs), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Reply builds an SMTP error reply; the enhanced code's class is the first
// digit of code (RFC 3463 §2).
func Reply(code, subject, detail int, text string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{code / 100, subject, detail}, Message: text}
}

type session struct {
	sink *Sink
	conn *smtp.Conn
	from string
	to   []string
	dsn  Message // the DSN parameters only
}

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if _, ok := ss.conn.TLSConnectionState(); ss.sink.opts.RequireTLS && !ok {
		return Reply(530, 7, 0, "Must issue a STARTTLS command first")
	}
	ss.from, ss.to, ss.dsn = from, nil, Message{Notify: map[string]string{}, ORcpt: map[string]string{}}
	if opts != nil {
		ss.dsn.Ret, ss.dsn.EnvID = string(opts.Return), opts.EnvelopeID
	}
	return nil
}

func (ss *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if opts != nil {
		var n []string
		for _, v := range opts.Notify {
			n = append(n, string(v))
		}
		if len(n) > 0 {
			ss.dsn.Notify[to] = strings.Join(n, ",")
		}
		if opts.OriginalRecipient != "" {
			ss.dsn.ORcpt[to] = string(opts.OriginalRecipientType) + ";" + opts.OriginalRecipient
		}
	}
	ss.sink.mu.Lock()
	fn := ss.sink.rcpt
	ss.sink.mu.Unlock()
	if fn != nil {
		if err := fn(to); err != nil {
			return err
		}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.sink.mu.Lock()
	fn := ss.sink.data
	ss.sink.mu.Unlock()
	if fn != nil {
		if err := fn(ss.from, ss.to, data); err != nil {
			return err
		}
	}
	_, isTLS := ss.conn.TLSConnectionState()
	ss.sink.mu.Lock()
	ss.sink.msgs = append(ss.sink.msgs, Message{From: ss.from, To: append([]string(nil), ss.to...), Data: data, TLS: isTLS,
		Ret: ss.dsn.Ret, EnvID: ss.dsn.EnvID, Notify: ss.dsn.Notify, ORcpt: ss.dsn.ORcpt})
	ss.sink.mu.Unlock()
	return nil
}

func (ss *session) Reset()        { ss.from, ss.to = "", nil }
func (ss *session) Logout() error { return nil }

type countingListener struct {
	net.Listener
	s *Sink
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.s.conns.Add(1)
		l.s.mu.Lock()
		l.s.open = append(l.s.open, c)
		l.s.mu.Unlock()
	}
	return c, err
}
