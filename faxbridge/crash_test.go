package faxbridge

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"nhsrelay/directory"
	"nhsrelay/directory/boltstore"
	"nhsrelay/directory/directorytest"
	"nhsrelay/relay"
	"nhsrelay/relay/queue"
)

const crashChildEnv = "FAXBRIDGE_CRASH_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir) // runs until killed
	}
	os.Exit(m.Run())
}

// crashChild runs the directory, relay, bridge and spool folder on state
// in dir, as `nhsrelay serve` would, until it is killed.
func crashChild(dir string) {
	fail := func(err error) { fmt.Fprintln(os.Stderr, "crash child:", err); os.Exit(3) }
	ctx := context.Background()
	st, err := boltstore.Open(filepath.Join(dir, "directory.db"))
	if err != nil {
		fail(err)
	}
	d, err := directory.Open(ctx, directory.Config{Store: st, HashCost: bcrypt.MinCost})
	if err != nil {
		fail(err)
	}
	q, err := queue.OpenBolt(filepath.Join(dir, "queue.db"))
	if err != nil {
		fail(err)
	}
	key, err := os.ReadFile(filepath.Join(dir, "key"))
	if err != nil {
		fail(err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	r, err := relay.New(relay.Config{Hostname: "relay.nhs.example", SpoolDir: filepath.Join(dir, "spool"), SpoolKey: key,
		Store: q, Directory: d, MaildirRoot: filepath.Join(dir, "maildir"), Logger: logger, Metrics: prometheus.NewRegistry()})
	if err != nil {
		fail(err)
	}
	go r.Run(ctx)
	b, err := New(Config{Directory: d, Queue: r, Dir: filepath.Join(dir, "fax"), SpoolKey: key, From: fromAddr,
		Logger: logger, DedupeWindow: -1})
	if err != nil {
		fail(err)
	}
	sf := &SpoolFolder{Bridge: b, Dir: filepath.Join(dir, "in"), Rescan: 100 * time.Millisecond, Settle: time.Millisecond}
	fail(sf.Run(ctx))
}

// TestSpoolFolderSurvivesKill9: faxes dropped into the folder, the
// process killed with SIGKILL again and again while it picks them up;
// at the end each fax is in the mailbox exactly once.
func TestSpoolFolderSurvivesKill9(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ep := directorytest.Verified(gpAddr, directory.NextHop{Kind: directory.HopHosted})
	ep.FaxNumbers = []string{gpFax}
	st, err := boltstore.Open(filepath.Join(dir, "directory.db"))
	if err != nil {
		t.Fatal(err)
	}
	directorytest.Seed(t, st, ep)
	st.Close()
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i * 7)
	}
	os.WriteFile(filepath.Join(dir, "key"), key, 0o600)
	in := filepath.Join(dir, "in")
	os.MkdirAll(in, 0o700)
	const faxes = 12
	tifs := []string{"g4-fine.tif", "g3-2d-normal.tif", "g4-3pages.tif", "g3-1d-fill-lsb2msb.tif"}
	for i := range faxes {
		drop(t, in, fmt.Sprintf("fax%02d", i), fixture(t, tifs[i%len(tifs)]),
			fmt.Sprintf(`{"called":"%s","calling":"+4416329601%02d"}`, gpFax, i))
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	start := func() *exec.Cmd {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		cmd.Stderr = t.Output()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	mailbox := filepath.Join(dir, "maildir", gpAddr, "new")
	for round := 0; round < 8; round++ {
		cmd := start()
		time.Sleep(time.Duration(30+rng.IntN(200)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	cmd := start()
	defer func() { cmd.Process.Signal(syscall.SIGKILL); cmd.Wait() }()
	waitFor(t, "every fax taken and delivered", func() bool {
		return count(in, "done/*.tif") >= faxes && count(mailbox, "*") >= faxes
	})
	time.Sleep(300 * time.Millisecond) // a double, if any, has time to land
	files, _ := filepath.Glob(filepath.Join(mailbox, "*"))
	seen := map[string][]string{} // subject → refs and mailbox names
	for _, f := range files {
		b, _ := os.ReadFile(f)
		var subject, ref string
		for _, l := range strings.Split(string(b), "\r\n") {
			if v, ok := strings.CutPrefix(l, "Subject: "); ok {
				subject = v
			}
			if v, ok := strings.CutPrefix(l, "X-NHSRelay-Fax-Ref: "); ok {
				ref = v
			}
		}
		seen[subject] = append(seen[subject], ref+" in "+filepath.Base(f))
	}
	if len(files) != faxes || len(seen) != faxes {
		for s, refs := range seen {
			if len(refs) > 1 {
				t.Errorf("%s delivered %d times: %v", s, len(refs), refs)
			}
		}
		t.Errorf("mailbox holds %d messages with %d distinct subjects, want %d", len(files), len(seen), faxes)
	}
	if n := count(in, "*.tif") + count(in, ".work/*"); n != 0 {
		t.Errorf("%d faxes left behind", n)
	}
}
