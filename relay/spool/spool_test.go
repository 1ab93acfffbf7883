package spool

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"nhsrelay/internal/durable"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func testKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func mustOpen(t testing.TB, dir string, key []byte) *Spool {
	t.Helper()
	s, err := Open(dir, key)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

func randomBody(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func readAll(s *Spool, id string) ([]byte, error) {
	r, err := s.Open(id)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, t.TempDir(), testKey(t))
	for _, size := range []int{0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 2 * chunkSize, 5 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			t.Parallel()
			id := fmt.Sprintf("msg-%d", size)
			body := randomBody(t, size)
			n, err := s.Write(id, bytes.NewReader(body))
			if err != nil || n != int64(size) {
				t.Fatalf("Write = %d, %v; want %d, nil", n, err, size)
			}
			got, err := readAll(s, id)
			if err != nil {
				t.Fatalf("read back: %v", err)
			}
			if !bytes.Equal(got, body) {
				t.Fatalf("read back %d bytes, want the %d written", len(got), size)
			}
			raw, err := os.ReadFile(s.path(id))
			if err != nil {
				t.Fatal(err)
			}
			if size >= 16 && bytes.Contains(raw, body[:16]) {
				t.Fatal("plaintext found in the spool file")
			}
		})
	}
}

// oneByteReader hands out one byte per Read, as a slow client would.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) { return o.r.Read(p[:min(1, len(p))]) }

func TestSmallReadsAndWrites(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, t.TempDir(), testKey(t))
	body := randomBody(t, chunkSize+100)
	if _, err := s.Write("slow", oneByteReader{bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	r, err := s.Open("slow")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(oneByteReader{r})
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("slow read: %d bytes, %v; want %d, nil", len(got), err, len(body))
	}
}

// tamper writes a message of size bytes, applies edit to its file and
// returns the error from reading it back.
func tamper(t *testing.T, size int, edit func(raw []byte) []byte) error {
	t.Helper()
	s := mustOpen(t, t.TempDir(), testKey(t))
	body := randomBody(t, size)
	if _, err := s.Write("m1", bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(s.path("m1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.path("m1"), edit(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readAll(s, "m1")
	if err == nil {
		t.Fatalf("read of tampered file succeeded with %d bytes (of %d)", len(got), size)
	}
	return err
}

func TestTamperDetected(t *testing.T) {
	t.Parallel()
	sealed := func(i int) int { return headerSize + i*sealedChunk } // offset of chunk i
	for _, tc := range []struct {
		name string
		size int
		edit func([]byte) []byte
	}{
		{"flip byte in first chunk", 1000, func(b []byte) []byte { b[headerSize+10] ^= 1; return b }},
		{"flip byte in tag", 1000, func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b }},
		{"flip nonce prefix", 1000, func(b []byte) []byte { b[headerSize-1] ^= 1; return b }},
		{"flip byte in last chunk", 3 * chunkSize / 2, func(b []byte) []byte { b[sealed(1)+5] ^= 1; return b }},
		{"truncate mid chunk", 3 * chunkSize / 2, func(b []byte) []byte { return b[:sealed(1)+100] }},
		{"truncate one byte", 1000, func(b []byte) []byte { return b[:len(b)-1] }},
		{"drop last chunk", 3 * chunkSize / 2, func(b []byte) []byte { return b[:sealed(1)] }},
		{"drop empty last chunk", chunkSize, func(b []byte) []byte { return b[:sealed(1)] }},
		{"truncate to header", 1000, func(b []byte) []byte { return b[:headerSize] }},
		{"truncate header", 1000, func(b []byte) []byte { return b[:headerSize-1] }},
		{"empty file", 1000, func(b []byte) []byte { return nil }},
		{"append byte", 1000, func(b []byte) []byte { return append(b, 0) }},
		{"append chunk copy", 3 * chunkSize / 2, func(b []byte) []byte {
			return append(b, b[sealed(0):sealed(1)]...)
		}},
		{"swap chunks", 5 * chunkSize / 2, func(b []byte) []byte {
			c0 := bytes.Clone(b[sealed(0):sealed(1)])
			copy(b[sealed(0):], b[sealed(1):sealed(2)])
			copy(b[sealed(1):], c0)
			return b
		}},
		{"duplicate first chunk", 5 * chunkSize / 2, func(b []byte) []byte {
			copy(b[sealed(1):], b[sealed(0):sealed(1)])
			return b
		}},
		{"bad magic", 10, func(b []byte) []byte { b[0] = 'X'; return b }},
		{"bad version", 10, func(b []byte) []byte { b[len(magic)] = 9; return b }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := tamper(t, tc.size, tc.edit); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("read error = %v, want ErrCorrupt", err)
			}
		})
	}
}

// A file renamed to another ID's name must not open as that message.
func TestRenamedFileRejected(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, t.TempDir(), testKey(t))
	if _, err := s.Write("a", strings.NewReader("for a")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(s.path("a"), s.path("b")); err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(s, "b"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read of a's file as b: error = %v, want ErrCorrupt", err)
	}
}

func TestWrongKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := mustOpen(t, dir, testKey(t))
	if _, err := s.Write("m1", strings.NewReader("referral letter")); err != nil {
		t.Fatal(err)
	}
	other := mustOpen(t, dir, testKey(t))
	if _, err := readAll(other, "m1"); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("read with another key: error = %v, want ErrWrongKey", err)
	}
	// A forged key ID (attacker copies the header's key ID) still fails on the tag.
	raw, _ := os.ReadFile(s.path("m1"))
	copy(raw[len(magic)+1:], other.kid)
	os.WriteFile(s.path("m1"), raw, 0o600)
	if _, err := readAll(other, "m1"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read with forged key id: error = %v, want ErrCorrupt", err)
	}
}

func TestWriteExistingRefused(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, t.TempDir(), testKey(t))
	if _, err := s.Write("m1", strings.NewReader("first")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write("m1", strings.NewReader("second")); !errors.Is(err, ErrExists) {
		t.Fatalf("second Write(m1) error = %v, want ErrExists", err)
	}
	if got, err := readAll(s, "m1"); err != nil || string(got) != "first" {
		t.Fatalf("m1 = %q, %v; want the first body kept", got, err)
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("client went away")
	}
	k := min(f.n, len(p))
	f.n -= k
	return k, nil
}

func TestFailedWriteLeavesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := mustOpen(t, dir, testKey(t))
	if _, err := s.Write("m1", &failingReader{n: chunkSize + 5}); err == nil {
		t.Fatal("Write from a failing reader succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("spool holds %d files after a failed Write, want 0", len(entries))
	}
	if _, err := s.Open("m1"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open(m1) error = %v, want fs.ErrNotExist", err)
	}
	// The ID is free again for the client's retry.
	if _, err := s.Write("m1", strings.NewReader("retry")); err != nil {
		t.Fatalf("Write after failure: %v", err)
	}
}

func TestBadIDs(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, t.TempDir(), testKey(t))
	for _, id := range []string{"", ".", "..", "../x", "a/b", `a\b`, ".hidden", "a b", "a\x00b", strings.Repeat("x", maxIDLen+1), "é"} {
		if _, err := s.Write(id, strings.NewReader("x")); !errors.Is(err, ErrBadID) {
			t.Errorf("Write(%q) error = %v, want ErrBadID", id, err)
		}
		if _, err := s.Open(id); !errors.Is(err, ErrBadID) {
			t.Errorf("Open(%q) error = %v, want ErrBadID", id, err)
		}
		if err := s.Remove(id); !errors.Is(err, ErrBadID) {
			t.Errorf("Remove(%q) error = %v, want ErrBadID", id, err)
		}
	}
}

func TestIDsAndRecovery(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := testKey(t)
	s := mustOpen(t, dir, key)
	for _, id := range []string{"c", "a", "b"} {
		if _, err := s.Write(id, strings.NewReader(id)); err != nil {
			t.Fatal(err)
		}
	}
	// What a crash mid-Write leaves: a temp file, and an unrelated file.
	os.WriteFile(filepath.Join(dir, "d.123.tmp"), []byte("half"), 0o600)
	os.WriteFile(filepath.Join(dir, "README"), []byte("x"), 0o600)
	if err := s.Remove("b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("b"); err != nil {
		t.Fatalf("Remove(missing) = %v, want nil", err)
	}
	s2 := mustOpen(t, dir, key)
	ids, err := s2.IDs()
	if err != nil || strings.Join(ids, ",") != "a,c" {
		t.Fatalf("IDs() = %q, %v; want [a c]", ids, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "d.123.tmp")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stray temp file survived Open: %v", err)
	}
}

func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, t.TempDir(), testKey(t))
	const writers, each = 16, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i)
				if _, err := s.Write(id, strings.NewReader(strings.Repeat(id, 100*i))); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	ids, _ := s.IDs()
	if len(ids) != writers*each {
		t.Fatalf("IDs() has %d messages, want %d", len(ids), writers*each)
	}
	for w := range writers {
		for i := range each {
			id := fmt.Sprintf("w%d-%d", w, i)
			got, err := readAll(s, id)
			if err != nil || string(got) != strings.Repeat(id, 100*i) {
				t.Fatalf("%s: %d bytes, %v", id, len(got), err)
			}
		}
	}
}

func TestOpenRejectsBadKey(t *testing.T) {
	t.Parallel()
	if _, err := Open(t.TempDir(), make([]byte, 16)); err == nil {
		t.Fatal("Open with a 16-byte key succeeded")
	}
}

// BenchmarkSpoolWrite measures durable writes of 4 KiB messages from
// parallel writers, the shape of SMTP load; group commit shows as msg/s
// above 1/fsync latency.
func BenchmarkSpoolWrite(b *testing.B) {
	s := mustOpen(b, b.TempDir(), testKey(b))
	benchParallelWrites(b, s)
}

// benchParallelWrites writes 4 KiB bodies from 16 writers per CPU, each
// under its own ID, and reports msg/s.
func benchParallelWrites(b *testing.B, s *Spool) {
	body := randomBody(b, 4096)
	var seq sync.Mutex
	next := 0
	b.SetBytes(int64(len(body)))
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			seq.Lock()
			next++
			id := fmt.Sprintf("bench-%d", next)
			seq.Unlock()
			if _, err := s.Write(id, bytes.NewReader(body)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}

func TestGroupSyncFailureIsSticky(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	gone := filepath.Join(dir, "gone")
	g := &groupSync{do: func() error { return durable.SyncDir(gone) }}
	if err := g.sync(); err == nil {
		t.Fatal("sync of a missing directory succeeded")
	}
	if err := os.Mkdir(gone, 0o700); err != nil {
		t.Fatal(err)
	}
	// fsync failed once: a later success proves nothing about earlier writes.
	if err := g.sync(); err == nil {
		t.Fatal("sync after a failed fsync succeeded; want the first error again")
	}
	ok := &groupSync{do: func() error { return durable.SyncDir(dir) }}
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if err := ok.sync(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok.done == 0 || ok.done > 32 {
		t.Fatalf("32 concurrent syncs ran %d fsyncs, want 1..32", ok.done)
	}
}
