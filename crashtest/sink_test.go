package crashtest

import (
	"errors"
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

// sink is the remote next hop: an SMTP server on loopback that records, per
// envelope recipient (the token), each delivery and the epoch of the relay
// process that made it: the test bumps the epoch between a kill and the
// restart, and a connection keeps the epoch it was accepted in.
type sink struct {
	addr  string
	epoch atomic.Int64
	mu    sync.Mutex
	got   map[string][]int64 // envelope recipient → epoch of each delivery
}

// startSink runs a sink on a kernel-chosen loopback port until the test ends.
func startSink(t *testing.T) *sink {
	t.Helper()
	s := &sink{got: make(map[string][]int64)}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &sinkSession{s: s, epoch: s.epoch.Load()}, nil
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

// deliveries returns a copy of what the sink recorded.
func (s *sink) deliveries() map[string][]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]int64, len(s.got))
	for k, v := range s.got {
		out[k] = append([]int64(nil), v...)
	}
	return out
}

type sinkSession struct {
	s     *sink
	epoch int64
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
		ss.s.got[rc] = append(ss.s.got[rc], ss.epoch)
	}
	ss.s.mu.Unlock()
	return nil
}
