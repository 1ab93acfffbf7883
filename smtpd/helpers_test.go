package smtpd

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"nhsrelay/certs/certstest"
	"nhsrelay/directory"
	"nhsrelay/relay"
)

// Test addresses. The directory fake below knows them.
const (
	hosted    = "gp.a81001@nhs.example"     // verified, delivered here (MX may accept)
	remote    = "ward7@trust.nhs.example"   // verified, delivered elsewhere
	suspended = "closed.b82002@nhs.example" // known, suspended
	external  = "someone@gmail.example"     // not in the directory
	user      = "gp-a81001"
	pass      = "correct horse battery staple"
	own       = "gp.a81001@nhs.example" // an address user owns
	other     = "ceo@trust.nhs.example" // one it does not
	// bulkDomain: every address in it is a verified remote endpoint.
	bulkDomain = "bulk.trust.nhs.example"
)

// fakeDir is a consumer-side Directory: a few endpoints and one account.
type fakeDir struct {
	authErr  error         // when set, Authenticate fails with it
	receipts string        // the account's Receipts default
	disabled *atomic.Value // of string: a reason once the account is disabled (nil: never)
}

// disabledReason is the account's disable reason, "" while it is active.
func (d fakeDir) disabledReason() string {
	if d.disabled == nil {
		return ""
	}
	s, _ := d.disabled.Load().(string)
	return s
}

func (fakeDir) CheckRecipient(ctx context.Context, addr string) (directory.Endpoint, error) {
	switch strings.ToLower(addr) {
	case hosted:
		return directory.Endpoint{Address: hosted, Status: directory.StatusVerified,
			NextHop: directory.NextHop{Kind: directory.HopHosted}}, nil
	case remote:
		return directory.Endpoint{Address: remote, Status: directory.StatusVerified,
			NextHop: directory.NextHop{Kind: directory.HopMX}}, nil
	case suspended:
		return directory.Endpoint{}, &directory.NotVerifiedError{Address: suspended,
			Status: directory.StatusSuspended, Reason: "practice closed on 2024-03-31",
			Successor: "B82099 mail.b82099@nhs.example"}
	}
	if strings.HasSuffix(strings.ToLower(addr), "@"+bulkDomain) { // any number of verified remote endpoints
		return directory.Endpoint{Address: addr, Status: directory.StatusVerified,
			NextHop: directory.NextHop{Kind: directory.HopMX}}, nil
	}
	return directory.Endpoint{}, fmt.Errorf("directory: lookup %s: %w", addr, directory.ErrNotFound)
}

func (d fakeDir) Authenticate(ctx context.Context, u, p string) (directory.Account, error) {
	if d.authErr != nil {
		return directory.Account{}, d.authErr
	}
	if u != user || p != pass {
		return directory.Account{}, directory.ErrAuthFailed
	}
	return d.ActiveAccount(ctx, u)
}

func (d fakeDir) ActiveAccount(ctx context.Context, u string) (directory.Account, error) {
	if u != user {
		return directory.Account{}, directory.ErrNotFound
	}
	if r := d.disabledReason(); r != "" {
		return directory.Account{}, &directory.AccountDisabledError{Username: user, Reason: r}
	}
	return directory.Account{Username: user, Addresses: []string{own}, Receipts: d.receipts}, nil
}

// recQueue records what it is given, as the relay would store it.
type recQueue struct {
	mu   sync.Mutex
	msgs []queued
	fail error // returned after reading the body, when set
}

type queued struct {
	id   string
	env  relay.Envelope
	body string
}

func (q *recQueue) Submit(ctx context.Context, env relay.Envelope, body io.Reader) (string, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return "", fmt.Errorf("queue: spool body: %w", err) // the relay wraps, as required
	}
	if q.fail != nil {
		return "", q.fail
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	id := fmt.Sprintf("Q%04d", len(q.msgs)+1)
	q.msgs = append(q.msgs, queued{id: id, env: env, body: string(b)})
	return id, nil
}

func (q *recQueue) all() []queued {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]queued(nil), q.msgs...)
}

type testServer struct {
	srv   *Server
	sub   string // 587-style, STARTTLS
	subs  string // 465-style, implicit TLS
	mx    string // 25-style
	queue *recQueue
	pool  *x509.CertPool
	reg   *prometheus.Registry
}

// counter returns the value of a counter, summed over series whose labels
// include label ("" for all).
func (ts *testServer) counter(t *testing.T, name, label string) float64 {
	t.Helper()
	mfs, err := ts.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, lp := range m.GetLabel() {
				match = match || lp.GetValue() == label
			}
			if match {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func (ts *testServer) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: ts.pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// startServer runs a real smtpd with all three listeners on kernel-chosen
// loopback ports until the test ends, and fails the test if any session
// panicked.
func startServer(t *testing.T, edit func(*Config)) *testServer {
	t.Helper()
	tlsCfg, pool := certstest.ServerTLS(t)
	ts := &testServer{queue: &recQueue{}, pool: pool, reg: prometheus.NewRegistry()}
	cfg := Config{Hostname: "relay.nhs.example", TLS: tlsCfg, Directory: fakeDir{}, Queue: ts.queue, Metrics: ts.reg,
		Logger:    slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
		GreetWait: 20 * time.Millisecond}
	if edit != nil {
		edit(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts.srv = srv
	done := make(chan error, 3)
	for _, m := range []struct {
		mode Mode
		addr *string
	}{{Submission, &ts.sub}, {SubmissionTLS, &ts.subs}, {MX, &ts.mx}} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		*m.addr = ln.Addr().String()
		go func() { done <- srv.Serve(ln, m.mode) }()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, ErrServerClosed) {
			t.Errorf("Shutdown: %v", err)
		}
		for range 3 {
			if err := <-done; !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve: %v, want ErrServerClosed", err)
			}
		}
		if n := ts.counter(t, "nhsrelay_smtpd_panics_total", ""); n != 0 {
			t.Errorf("%v sessions panicked", n)
		}
	})
	return ts
}

// wantReply checks err is an SMTP reply with code and enhanced code.
func wantReply(t *testing.T, err error, code int, enh string) *smtp.SMTPError {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("error = %v, want SMTP reply %d %s", err, code, enh)
	}
	got := fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
	if se.Code != code || got != enh {
		t.Fatalf("reply = %d %s %q, want %d %s", se.Code, got, se.Message, code, enh)
	}
	return se
}

// submitClient is a go-smtp client on 587 after STARTTLS and AUTH PLAIN.
func (ts *testServer) submitClient(t *testing.T) *smtp.Client {
	t.Helper()
	c, err := smtp.DialStartTLS(ts.sub, ts.tlsConfig())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	return c
}

// send runs one transaction; the error is the first refusal.
func send(c *smtp.Client, from string, to []string, msg string) (string, error) {
	if err := c.Mail(from, nil); err != nil {
		return "", err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return "", err
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	return resp.StatusText, nil
}

func message(from string) string {
	return "From: GP <" + from + ">\r\nTo: <" + remote + ">\r\nSubject: referral\r\n\r\nPlease see the attached.\r\n"
}

// rawConn speaks SMTP byte for byte, for what a well-behaved client cannot send.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

// greeted dials and reads the whole greeting.
func greeted(t *testing.T, addr string) *rawConn {
	t.Helper()
	rc := dialRaw(t, addr)
	if got := rc.reply(); !strings.HasPrefix(got, "220 ") {
		t.Fatalf("greeting = %q", got)
	}
	return rc
}

// reply reads one whole reply and returns its last line ("" on EOF).
func (rc *rawConn) reply() string {
	rc.t.Helper()
	for {
		line, err := rc.r.ReadString('\n')
		if err != nil {
			return strings.TrimSpace(line)
		}
		if len(line) < 4 || line[3] != '-' {
			return strings.TrimRight(line, "\r\n")
		}
	}
}

// replyAll reads a whole reply and returns all its lines.
func (rc *rawConn) replyAll() []string {
	rc.t.Helper()
	var lines []string
	for {
		line, err := rc.r.ReadString('\n')
		lines = append(lines, strings.TrimRight(line, "\r\n"))
		if err != nil || len(line) < 4 || line[3] != '-' {
			return lines
		}
	}
}

func (rc *rawConn) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// cmd sends one line and returns the last line of the reply.
func (rc *rawConn) cmd(line string) string {
	rc.t.Helper()
	rc.send(line + "\r\n")
	return rc.reply()
}

func (rc *rawConn) want(line, prefix string) {
	rc.t.Helper()
	if got := rc.cmd(line); !strings.HasPrefix(got, prefix) {
		rc.t.Fatalf("%s → %q, want %q", line, got, prefix)
	}
}

// startTLS upgrades a raw connection after EHLO.
func (rc *rawConn) startTLS(ts *testServer) {
	rc.t.Helper()
	rc.send("STARTTLS\r\n")
	rc.startTLSAnswered(ts)
}

// startTLSAnswered reads the 220 to a STARTTLS already sent and does the handshake.
func (rc *rawConn) startTLSAnswered(ts *testServer) {
	rc.t.Helper()
	if got := rc.reply(); !strings.HasPrefix(got, "220 2.0.0 ") {
		rc.t.Fatalf("STARTTLS → %q, want 220 2.0.0", got)
	}
	tc := tls.Client(rc.c, ts.tlsConfig())
	if err := tc.Handshake(); err != nil {
		rc.t.Fatalf("handshake: %v", err)
	}
	rc.c, rc.r = tc, bufio.NewReader(tc)
}

// closed reports whether the server closed the connection.
func (rc *rawConn) closed() bool {
	rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := rc.r.ReadByte()
	return err != nil
}

// dialTLSRaw is greeted for the implicit-TLS listener.
func (ts *testServer) dialTLSRaw(t *testing.T) *rawConn {
	t.Helper()
	c, err := tls.Dial("tcp", ts.subs, ts.tlsConfig())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	rc := &rawConn{t: t, c: c, r: bufio.NewReader(c)}
	if got := rc.reply(); !strings.HasPrefix(got, "220 ") {
		t.Fatalf("greeting = %q", got)
	}
	return rc
}

// plainIR is the base64 initial response of AUTH PLAIN (RFC 4616).
func plainIR(u, p string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + u + "\x00" + p))
}

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// The real implementations cmd wires in satisfy what smtpd consumes.
var (
	_ Directory = (*directory.Directory)(nil)
	_ Queue     = (*relay.Relay)(nil)
)
