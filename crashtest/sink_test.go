package crashtest

import (
	"errors"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// sink is the remote next hop: an SMTP server on loopback that counts, per
// envelope recipient (the token), how many times a message was delivered.
type sink struct {
	addr string
	mu   sync.Mutex
	got  map[string]int // envelope recipient → deliveries
	n    int            // deliveries in all
}

// startSink runs a sink on a kernel-chosen loopback port until the test ends.
func startSink(t *testing.T) *sink {
	t.Helper()
	s := &sink{got: make(map[string]int)}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &sinkSession{s: s}, nil
	}))
	srv.Domain = "sink.localhost"
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.MaxMessageBytes = 10 << 20
	srv.ErrorLog = log.New(t.Output(), "sink: ", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("sink listen: %v", err)
	}
	s.addr = ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			t.Errorf("sink Serve: %v", err)
		}
	})
	return s
}

// counts returns a copy of the per-token delivery counts and the total.
func (s *sink) counts() (map[string]int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.got))
	for k, v := range s.got {
		out[k] = v
	}
	return out, s.n
}

type sinkSession struct {
	s     *sink
	rcpts []string
}

func (ss *sinkSession) Reset()                               { ss.rcpts = nil }
func (ss *sinkSession) Logout() error                        { return nil }
func (ss *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.rcpts = append(ss.rcpts, strings.ToLower(to))
	return nil
}

// Data counts the message only once it has been read whole: the relay
// sees our 250 only after that, and a message cut short is not delivered.
func (ss *sinkSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	ss.s.mu.Lock()
	for _, rc := range ss.rcpts {
		ss.s.got[rc]++
		ss.s.n++
	}
	ss.s.mu.Unlock()
	return nil
}
