package maildir

import (
	"errors"
	"fmt"
	"nhsrelay/internal/durable"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("ReadDir: %v", err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func TestDeliver(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ward7@trust.nhs.example")
	msg := "From: a@b\r\nSubject: x\r\n\r\nbody\r\n"
	if err := Deliver(dir, "ID1-abc", strings.NewReader(msg)); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	got := names(t, filepath.Join(dir, "new"))
	if len(got) != 1 {
		t.Fatalf("new/ = %v, want one message", got)
	}
	if tmp := names(t, filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Errorf("tmp/ = %v, want empty", tmp)
	}
	name := got[0]
	if strings.ContainsAny(name, "/:") || strings.Count(name, ".") < 2 {
		t.Errorf("name %q is not time.unique.host", name)
	}
	if !strings.HasSuffix(name, ",S="+strconv.Itoa(len(msg))) {
		t.Errorf("name %q lacks ,S=<size>", name)
	}
	path := filepath.Join(dir, "new", name)
	data, err := os.ReadFile(path)
	if err != nil || string(data) != msg {
		t.Fatalf("content = %q, %v; want %q", data, err, msg)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	di, _ := os.Stat(filepath.Join(dir, "cur"))
	if di.Mode().Perm() != 0o700 {
		t.Errorf("cur/ mode = %v, want 0700", di.Mode().Perm())
	}
}

func TestDeliverIdempotent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for range 3 {
		if err := Deliver(dir, "ID1-abc", strings.NewReader("x\r\n")); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
	}
	if got := names(t, filepath.Join(dir, "new")); len(got) != 1 {
		t.Fatalf("new/ after 3 deliveries of one key = %v, want 1", got)
	}
	// A reader (Dovecot) moves the message to cur/ with flags: still found.
	old := names(t, filepath.Join(dir, "new"))[0]
	if err := os.Rename(filepath.Join(dir, "new", old), filepath.Join(dir, "cur", old+":2,S")); err != nil {
		t.Fatal(err)
	}
	if err := Deliver(dir, "ID1-abc", strings.NewReader("x\r\n")); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if got := names(t, filepath.Join(dir, "new")); len(got) != 0 {
		t.Errorf("delivered again though the key is in cur/: %v", got)
	}
	// Another key, and a key that is a suffix of the first, are new messages.
	for _, k := range []string{"ID2-abc", "abc", "1-abc"} {
		if err := Deliver(dir, k, strings.NewReader("y\r\n")); err != nil {
			t.Fatalf("Deliver(%s): %v", k, err)
		}
	}
	if got := names(t, filepath.Join(dir, "new")); len(got) != 3 {
		t.Errorf("new/ = %v, want 3 messages", got)
	}
}

type failingReader struct{}

var errBroken = errors.New("broken pipe")

func (failingReader) Read([]byte) (int, error) { return 0, errBroken }

func TestDeliverReadErrorLeavesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := Deliver(dir, "k", failingReader{}); !errors.Is(err, errBroken) {
		t.Fatalf("Deliver error = %v, want one wrapping the reader's", err)
	}
	for _, sub := range []string{"tmp", "new"} {
		if got := names(t, filepath.Join(dir, sub)); len(got) != 0 {
			t.Errorf("%s/ = %v after a failed delivery", sub, got)
		}
	}
}

func TestBadKey(t *testing.T) {
	t.Parallel()
	for _, k := range []string{"", "a/b", "a.b", "a:b", "a_Kb", strings.Repeat("a", 129), "../x"} {
		if err := Deliver(t.TempDir(), k, strings.NewReader("x")); !errors.Is(err, ErrBadKey) {
			t.Errorf("Deliver(key %q) error = %v, want ErrBadKey", k, err)
		}
	}
}

// messages lists the delivered files of the Maildir at dir, in new/ and cur/.
func messages(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, sub := range []string{"new", "cur"} {
		for _, n := range names(t, filepath.Join(dir, sub)) {
			out = append(out, sub+"/"+n)
		}
	}
	return out
}

// syncLog records the folders fsynced through hooks.sync.
type syncLog struct {
	mu   sync.Mutex
	dirs []string
	fail string // fsync of this folder fails
}

func (l *syncLog) sync(dir string) error {
	l.mu.Lock()
	l.dirs = append(l.dirs, dir)
	l.mu.Unlock()
	if dir == l.fail {
		return errors.New("injected fsync failure")
	}
	return durable.SyncDir(dir)
}

func (l *syncLog) has(dir string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.dirs, dir)
}

func TestFirstDeliveryMakesNewFoldersDurable(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "maildir", "ward7@trust.nhs.example")
	var log syncLog
	if err := deliver(dir, "ID1-a", strings.NewReader("x\r\n"), hooks{sync: log.sync}); err != nil {
		t.Fatalf("deliver: %v", err)
	}
	marks := filepath.Join(root, "maildir", MarkerFolder, "ward7@trust.nhs.example")
	// Every folder this delivery created has its parent fsynced: the
	// mailbox's entry in maildir/, maildir's in root, tmp/new/cur's in the
	// mailbox, the marker folders'; then tmp (P), new (the link), marks (D).
	for _, d := range []string{root, filepath.Join(root, "maildir"), dir,
		filepath.Join(root, "maildir", MarkerFolder), marks,
		filepath.Join(dir, "tmp"), filepath.Join(dir, "new")} {
		if !log.has(d) {
			t.Errorf("%s not fsynced; fsynced: %v", d, log.dirs)
		}
	}
	// The second delivery creates no folder: only tmp, new and marks.
	var again syncLog
	if err := deliver(dir, "ID2-a", strings.NewReader("y\r\n"), hooks{sync: again.sync}); err != nil {
		t.Fatalf("deliver: %v", err)
	}
	want := []string{filepath.Join(dir, "tmp"), filepath.Join(dir, "new"), marks}
	if !slices.Equal(again.dirs, want) {
		t.Errorf("second delivery fsynced %v, want %v", again.dirs, want)
	}
}

// TestCrashThenRetry stops a delivery at each durable step, as a power cut
// would, lets a reader act on the mailbox, retries, and counts copies.
func TestCrashThenRetry(t *testing.T) {
	t.Parallel()
	const msg = "Subject: referral\r\n\r\nbody\r\n"
	for _, tc := range []struct {
		crashAt, reader string
		want            int
	}{
		{"written", "", 1},
		{"pending", "", 1},
		{"linked", "", 1},
		{"linked", "read", 1},
		{"visible", "", 1},
		{"visible", "read", 1},
		// The documented residual case: a crash between new/'s fsync and the
		// marker's, then an expunge before the retry, gives a second copy.
		{"visible", "expunge", 1},
		{"marked", "", 1},
		{"marked", "read", 1},
		{"marked", "expunge", 0},
	} {
		t.Run(tc.crashAt+"-"+tc.reader, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "box")
			err := deliver(dir, "Q1-x", strings.NewReader(msg), hooks{crashAt: tc.crashAt})
			if !errors.Is(err, errCrash) {
				t.Fatalf("deliver = %v, want the simulated crash", err)
			}
			for _, m := range messages(t, dir) {
				p := filepath.Join(dir, m)
				switch tc.reader {
				case "read": // Dovecot: new/NAME → cur/NAME:2,S
					if err := os.Rename(p, filepath.Join(dir, "cur", filepath.Base(m)+":2,S")); err != nil {
						t.Fatal(err)
					}
				case "expunge":
					if err := os.Remove(p); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := Deliver(dir, "Q1-x", strings.NewReader(msg)); err != nil {
				t.Fatalf("retry: %v", err)
			}
			got := messages(t, dir)
			if len(got) != tc.want {
				t.Fatalf("after retry the mailbox holds %v, want %d message(s)", got, tc.want)
			}
			for _, m := range got {
				if b, err := os.ReadFile(filepath.Join(dir, m)); err != nil || string(b) != msg {
					t.Errorf("%s = %q, %v; want the whole message", m, b, err)
				}
			}
			if tmp := names(t, filepath.Join(dir, "tmp")); len(tmp) != 0 {
				t.Errorf("tmp/ = %v after the retry, want empty", tmp)
			}
			if ok, err := Has(dir, "Q1-x"); !ok || err != nil {
				t.Errorf("Has after retry = %v, %v; want true", ok, err)
			}
			// And once more: the marker holds, whatever the reader did.
			if err := Deliver(dir, "Q1-x", strings.NewReader(msg)); err != nil {
				t.Fatal(err)
			}
			if again := messages(t, dir); len(again) != tc.want {
				t.Errorf("third call changed the mailbox to %v", again)
			}
		})
	}
}

// A pending file cut short by a crash mid-write is never linked: the retry
// writes the message afresh from the reader.
func TestPartialPendingIsRewritten(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "box")
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "tmp", pendingPrefix+"k1"), []byte("Subj"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ok, _ := Has(dir, "k1"); ok {
		t.Error("Has = true for a pending file never linked")
	}
	const msg = "Subject: whole\r\n\r\nbody\r\n"
	if err := Deliver(dir, "k1", strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	got := messages(t, dir)
	if len(got) != 1 {
		t.Fatalf("mailbox = %v, want 1 message", got)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, got[0])); string(b) != msg {
		t.Errorf("delivered %q, want %q", b, msg)
	}
}

// An fsync that fails after the link leaves the pending file as evidence;
// the retry finishes without a second copy.
func TestErrorAfterLinkThenRetry(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "box")
	if err := os.MkdirAll(filepath.Join(dir, "new"), 0o700); err != nil {
		t.Fatal(err)
	}
	log := syncLog{fail: filepath.Join(dir, "new")}
	if err := deliver(dir, "k1", strings.NewReader("x\r\n"), hooks{sync: log.sync}); err == nil {
		t.Fatal("deliver reported success though fsync of new/ failed")
	}
	if ok, _ := Has(dir, "k1"); !ok {
		t.Error("Has = false though the message was linked into new/")
	}
	if err := Deliver(dir, "k1", strings.NewReader("x\r\n")); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if got := messages(t, dir); len(got) != 1 {
		t.Errorf("mailbox = %v, want 1 message", got)
	}
}

func TestExpungedNotRedelivered(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "box")
	if err := Deliver(dir, "k1", strings.NewReader("x\r\n")); err != nil {
		t.Fatal(err)
	}
	for _, m := range messages(t, dir) {
		os.Remove(filepath.Join(dir, m))
	}
	if err := Deliver(dir, "k1", strings.NewReader("x\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := messages(t, dir); len(got) != 0 {
		t.Errorf("expunged message delivered again: %v", got)
	}
}

// Dovecot must see only tmp, new and cur in a Maildir: no marker folder,
// which Maildir++, imapdir or fs layout could list as a mailbox.
func TestMaildirHoldsOnlyMaildirFolders(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "gp@nhs.example")
	if err := Deliver(dir, "k1", strings.NewReader("x\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"cur", "new", "tmp"}) {
		t.Errorf("Maildir holds %v, want [cur new tmp]", got)
	}
	if got := names(t, root); !slices.Equal(got, []string{MarkerFolder, "gp@nhs.example"}) {
		t.Errorf("root holds %v, want the mailbox and %s", got, MarkerFolder)
	}
	if _, err := os.Stat(filepath.Join(root, MarkerFolder, "gp@nhs.example", "k1")); err != nil {
		t.Errorf("marker: %v", err)
	}
	if err := Deliver(filepath.Join(root, MarkerFolder), "k1", strings.NewReader("x")); err == nil {
		t.Error("delivered into the marker folder")
	}
}

func TestConcurrentFirstDeliveries(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "new-box")
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			errs <- Deliver(dir, fmt.Sprintf("ID%d-x", i), strings.NewReader("x\r\n"))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := messages(t, dir); len(got) != 16 {
		t.Errorf("mailbox holds %d messages, want 16", len(got))
	}
}

func TestPrune(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if n, err := Prune(root, time.Now()); n != 0 || err != nil {
		t.Errorf("Prune before any delivery = %d, %v; want 0, nil", n, err)
	}
	a, b := filepath.Join(root, "a@nhs.example"), filepath.Join(root, "b@nhs.example")
	for _, d := range []struct{ dir, key string }{{a, "old1"}, {a, "new1"}, {b, "old2"}} {
		if err := Deliver(d.dir, d.key, strings.NewReader("x\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	week := time.Now().Add(-7 * 24 * time.Hour)
	for _, m := range []string{filepath.Join(root, MarkerFolder, "a@nhs.example", "old1"),
		filepath.Join(root, MarkerFolder, "b@nhs.example", "old2")} {
		if err := os.Chtimes(m, week, week); err != nil {
			t.Fatal(err)
		}
	}
	// A file that is no marker is left alone, however old.
	stray := filepath.Join(root, MarkerFolder, "a@nhs.example", "README.txt")
	if err := os.WriteFile(stray, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(stray, week, week)
	n, err := Prune(root, time.Now().Add(-24*time.Hour))
	if n != 2 || err != nil {
		t.Fatalf("Prune = %d, %v; want 2, nil", n, err)
	}
	for _, c := range []struct {
		dir, key string
		want     bool
	}{{a, "old1", false}, {a, "new1", true}, {b, "old2", false}} {
		if got, err := Has(c.dir, c.key); got != c.want || err != nil {
			t.Errorf("Has(%s, %s) after Prune = %v, %v; want %v", filepath.Base(c.dir), c.key, got, err, c.want)
		}
	}
	if _, err := os.Stat(stray); err != nil {
		t.Errorf("Prune removed a file that is no marker: %v", err)
	}
}
