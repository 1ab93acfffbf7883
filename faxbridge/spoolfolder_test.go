package faxbridge

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"nhsrelay/internal/durable"
	"nhsrelay/relay"
)

// runSpool runs a SpoolFolder on dir until the test ends.
func runSpool(t *testing.T, b *Bridge, dir string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	sf := &SpoolFolder{Bridge: b, Dir: dir, Rescan: 200 * time.Millisecond, Settle: time.Millisecond}
	go func() { done <- sf.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("SpoolFolder.Run: %v", err)
		}
	})
}

// drop puts a fax and its sidecar into dir as a fax server would: written
// under hidden names, renamed in.
func drop(t *testing.T, dir, name string, tif []byte, sidecar string) {
	t.Helper()
	if sidecar != "" {
		if err := durable.WriteFile(filepath.Join(dir, name+".json"), []byte(sidecar)); err != nil {
			t.Fatal(err)
		}
	}
	if tif != nil {
		if err := durable.WriteFile(filepath.Join(dir, name+".tif"), tif); err != nil {
			t.Fatal(err)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func count(dir, pattern string) int {
	m, _ := filepath.Glob(filepath.Join(dir, pattern))
	return len(m)
}

func TestSpoolFolderEndToEnd(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	in := filepath.Join(t.TempDir(), "in")
	os.MkdirAll(in, 0o700)
	drop(t, in, "a", fixture(t, "g3-2d-3pages-lsb2msb.tif"), `{"called":"01632 960001","calling":"+441632960777"}`)
	drop(t, in, "lost", fixture(t, "g4-fine.tif"), `{"called":"+441632960555"}`)
	drop(t, in, "bad", nil, `{"called":"+441632960001","failed":"No carrier detected"}`)
	runSpool(t, w.bridge, in)
	subject, _ := parts(t, w.mailbox(t, gpAddr, 1)[0])
	if subject != "Fax from +441632960777 (3 pages)" {
		t.Errorf("Subject = %q", subject)
	}
	waitFor(t, "done/ and failed/", func() bool {
		return count(in, "done/*-a.tif") == 1 && count(in, "done/*-a.json") == 1 &&
			count(in, "failed/*-lost.tif") == 1 && count(in, "done/*-bad.json") == 1
	})
	if n := count(in, "*") + count(in, ".work/*"); n != 3 { // done, failed, .work dirs only
		t.Errorf("spool folder still holds %d entries", n-3)
	}
}

// refusingQueue is a relay that cannot store (disk full).
type refusingQueue struct{}

func (refusingQueue) Submit(context.Context, relay.Envelope, io.Reader) (string, error) {
	return "", errors.New("spool: write: no space left on device")
}

func TestSpoolFolderKeepsWhatItCannotStore(t *testing.T) {
	t.Parallel()
	w := newWorld(t, func(c *Config) { c.Queue = refusingQueue{} })
	in := filepath.Join(t.TempDir(), "in")
	os.MkdirAll(in, 0o700)
	tif := fixture(t, "g4-fine.tif")
	drop(t, in, "a", tif, `{"called":"+441632960001"}`)
	sf := &SpoolFolder{Bridge: w.bridge, Dir: in, Settle: time.Millisecond}
	os.MkdirAll(filepath.Join(in, workDir), 0o700)
	time.Sleep(5 * time.Millisecond)
	sf.Scan(t.Context())
	got, err := os.ReadFile(filepath.Join(in, "a.tif"))
	if err != nil || string(got) != string(tif) {
		t.Fatalf("the fax was not left in place: %v", err)
	}
	if _, err := os.Stat(filepath.Join(in, "a.json")); err != nil {
		t.Errorf("the sidecar was not left in place: %v", err)
	}
	if n := count(in, ".work/*"); n != 0 {
		t.Errorf(".work holds %d files", n)
	}
}
