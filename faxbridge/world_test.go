package faxbridge

import (
	"context"
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
	"nhsrelay/relay"
	"nhsrelay/relay/queue"
)

const (
	gpAddr   = "gp.a81001@nhs.example"
	gpFax    = "+441632960001"
	fromAddr = "fax-bridge@relay.nhs.example"
)

// world is a real directory (an endpoint hosted here owning gpFax), a real
// relay delivering to a Maildir, and a Bridge over them.
type world struct {
	dir     *directory.Directory
	relay   *relay.Relay
	bridge  *Bridge
	maildir string
	cfg     Config
}

func newWorld(t *testing.T, edit func(*Config)) *world {
	t.Helper()
	tmp := t.TempDir()
	ep := directorytest.Verified(gpAddr, directory.NextHop{Kind: directory.HopHosted})
	ep.FaxNumbers = []string{gpFax}
	w := &world{dir: directorytest.New(t, ep), maildir: filepath.Join(tmp, "maildir")}
	st, err := queue.OpenBolt(filepath.Join(tmp, "queue.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key := make([]byte, 32)
	rand.Read(key)
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	w.relay, err = relay.New(relay.Config{Hostname: "relay.nhs.example", SpoolDir: filepath.Join(tmp, "spool"),
		SpoolKey: key, Store: st, Directory: w.dir, MaildirRoot: w.maildir, Logger: logger,
		Metrics: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.relay.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	w.cfg = Config{Directory: w.dir, Queue: w.relay, Dir: filepath.Join(tmp, "fax"), SpoolKey: key,
		From: fromAddr, Logger: logger, Metrics: prometheus.NewRegistry()}
	if edit != nil {
		edit(&w.cfg)
	}
	w.bridge, err = New(w.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.bridge.Close() })
	return w
}

// mailbox waits (bounded) until the endpoint's Maildir holds n messages
// and returns them.
func (w *world) mailbox(t *testing.T, addr string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(w.maildir, strings.ToLower(addr), "new", "*"))
		if len(files) >= n {
			var out []string
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, string(b))
			}
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("maildir of %s has %d messages, want %d", addr, len(files), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
