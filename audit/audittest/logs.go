package audittest

import (
	"bytes"
	"log/slog"
	"sync"
)

// Logs collects what a logger writes, from any goroutine, for a test to
// check that a fault was reported (level=ERROR and the words an operator
// needs).
type Logs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Logger returns a text logger writing into l.
func (l *Logs) Logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
