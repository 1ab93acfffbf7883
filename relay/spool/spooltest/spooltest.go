// Package spooltest is the contract suite every spool.Bodies passes: the
// spool folder and the Redis body store run the same checks.
package spooltest

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"

	"nhsrelay/relay/spool"
)

// Place returns, for one test, a fresh empty place to keep bodies, and a
// function that opens the body store at that place with a key. It may be
// called more than once (another node, a restart, another key) and each
// store opened sees what the others wrote.
type Place func(t *testing.T) (open func(key []byte) spool.Bodies)

// Run checks a Bodies implementation.
func Run(t *testing.T, place Place) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, func(key []byte) spool.Bodies)
	}{
		{"RoundTrip", testRoundTrip},
		{"WriteExisting", testWriteExisting},
		{"OpenMissing", testOpenMissing},
		{"Remove", testRemove},
		{"BadID", testBadID},
		{"IDsSorted", testIDsSorted},
		{"SeenByAnotherOpen", testSeenByAnotherOpen},
		{"WrongKey", testWrongKey},
		{"ConcurrentWrites", testConcurrentWrites},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, place(t))
		})
	}
}

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, spool.KeySize)
	rand.Read(k)
	return k
}

func mustWrite(t *testing.T, b spool.Bodies, id string, body []byte) {
	t.Helper()
	n, err := b.Write(id, bytes.NewReader(body))
	if err != nil || n != int64(len(body)) {
		t.Fatalf("Write(%s, %d bytes) = %d, %v", id, len(body), n, err)
	}
}

func mustRead(t *testing.T, b spool.Bodies, id string) []byte {
	t.Helper()
	r, err := b.Open(id)
	if err != nil {
		t.Fatalf("Open(%s): %v", id, err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", id, err)
	}
	return got
}

func testRoundTrip(t *testing.T, open func([]byte) spool.Bodies) {
	b := open(newKey(t))
	for _, size := range []int{0, 1, 1000, 64 << 10, 200 << 10} { // empty, small, a chunk, several chunks
		body := make([]byte, size)
		rand.Read(body)
		id := "M" + strings.Repeat("x", size%7) + "-" + string(rune('a'+size%26))
		mustWrite(t, b, id, body)
		if got := mustRead(t, b, id); !bytes.Equal(got, body) {
			t.Errorf("%d-byte body read back as %d bytes, not equal", size, len(got))
		}
	}
}

func testWriteExisting(t *testing.T, open func([]byte) spool.Bodies) {
	b := open(newKey(t))
	mustWrite(t, b, "M1", []byte("first"))
	if _, err := b.Write("M1", strings.NewReader("second")); !errors.Is(err, spool.ErrExists) {
		t.Fatalf("second Write(M1) = %v, want ErrExists", err)
	}
	if got := mustRead(t, b, "M1"); string(got) != "first" {
		t.Fatalf("after a refused Write, M1 = %q, want the first body", got)
	}
}

func testOpenMissing(t *testing.T, open func([]byte) spool.Bodies) {
	if _, err := open(newKey(t)).Open("nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open(missing) = %v, want fs.ErrNotExist", err)
	}
}

func testRemove(t *testing.T, open func([]byte) spool.Bodies) {
	b := open(newKey(t))
	if err := b.Remove("never-written"); err != nil {
		t.Fatalf("Remove(missing) = %v, want nil", err)
	}
	mustWrite(t, b, "M1", []byte("body"))
	if err := b.Remove("M1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Open("M1"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open after Remove = %v, want fs.ErrNotExist", err)
	}
	if ids, err := b.IDs(); err != nil || slices.Contains(ids, "M1") {
		t.Fatalf("IDs after Remove = %v, %v; want M1 gone", ids, err)
	}
	mustWrite(t, b, "M1", []byte("again")) // a removed ID is free
}

func testBadID(t *testing.T, open func([]byte) spool.Bodies) {
	b := open(newKey(t))
	for _, id := range []string{"", ".hidden", "../escape", "a/b", strings.Repeat("x", 129)} {
		if _, err := b.Write(id, strings.NewReader("x")); !errors.Is(err, spool.ErrBadID) {
			t.Errorf("Write(%q) = %v, want ErrBadID", id, err)
		}
		if _, err := b.Open(id); !errors.Is(err, spool.ErrBadID) {
			t.Errorf("Open(%q) = %v, want ErrBadID", id, err)
		}
		if err := b.Remove(id); !errors.Is(err, spool.ErrBadID) {
			t.Errorf("Remove(%q) = %v, want ErrBadID", id, err)
		}
	}
}

func testIDsSorted(t *testing.T, open func([]byte) spool.Bodies) {
	b := open(newKey(t))
	for _, id := range []string{"M3", "M1", "M2"} {
		mustWrite(t, b, id, []byte(id))
	}
	ids, err := b.IDs()
	if err != nil || !slices.Equal(ids, []string{"M1", "M2", "M3"}) {
		t.Fatalf("IDs = %v, %v; want [M1 M2 M3]", ids, err)
	}
}

// What one store wrote, another opened at the same place reads: a restart,
// or another node of a cluster.
func testSeenByAnotherOpen(t *testing.T, open func([]byte) spool.Bodies) {
	key := newKey(t)
	mustWrite(t, open(key), "M1", []byte("kept"))
	if got := mustRead(t, open(key), "M1"); string(got) != "kept" {
		t.Fatalf("another open read %q, want kept", got)
	}
}

func testWrongKey(t *testing.T, open func([]byte) spool.Bodies) {
	mustWrite(t, open(newKey(t)), "M1", []byte("secret"))
	if _, err := open(newKey(t)).Open("M1"); !errors.Is(err, spool.ErrWrongKey) {
		t.Fatalf("Open under another key = %v, want ErrWrongKey", err)
	}
}

func testConcurrentWrites(t *testing.T, open func([]byte) spool.Bodies) {
	b := open(newKey(t))
	const n = 20
	var wg sync.WaitGroup
	wins := make(chan string, n*2)
	for i := range n {
		for range 2 { // two writers race for each ID: exactly one wins
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := "C" + string(rune('a'+i))
				if _, err := b.Write(id, strings.NewReader(id)); err == nil {
					wins <- id
				} else if !errors.Is(err, spool.ErrExists) {
					t.Errorf("Write(%s): %v", id, err)
				}
			}()
		}
	}
	wg.Wait()
	close(wins)
	seen := map[string]int{}
	for id := range wins {
		seen[id]++
	}
	for i := range n {
		id := "C" + string(rune('a'+i))
		if seen[id] != 1 {
			t.Errorf("%s written by %d racing writers, want exactly 1", id, seen[id])
		}
		if got := mustRead(t, b, id); string(got) != id {
			t.Errorf("%s = %q", id, got)
		}
	}
}
