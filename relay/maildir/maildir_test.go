package maildir

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
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
