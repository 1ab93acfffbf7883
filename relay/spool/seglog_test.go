package spool

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func mustOpenSmall(t testing.TB, dir string, key []byte) *Spool {
	t.Helper()
	s, err := OpenWith(dir, key, Options{SmallMax: MaxSmall})
	if err != nil {
		t.Fatalf("OpenWith(%s): %v", dir, err)
	}
	return s
}

func segments(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSmallBodiesRoundTripAndSurviveReopen(t *testing.T) {
	t.Parallel()
	dir, key := t.TempDir(), testKey(t)
	s := mustOpenSmall(t, dir, key)
	bodies := map[string][]byte{}
	for _, size := range []int{0, 1, 4096, MaxSmall - 1, MaxSmall, MaxSmall + 1, 3 * MaxSmall} {
		id := fmt.Sprintf("m-%d", size)
		bodies[id] = randomBody(t, size)
		n, err := s.Write(id, bytes.NewReader(bodies[id]))
		if err != nil || n != int64(size) {
			t.Fatalf("Write(%s) = %d, %v", id, n, err)
		}
	}
	if _, err := os.Stat(s.path(fmt.Sprintf("m-%d", MaxSmall))); err == nil {
		t.Error("a body of SmallMax bytes got a file of its own")
	}
	if _, err := os.Stat(s.path(fmt.Sprintf("m-%d", MaxSmall+1))); err != nil {
		t.Errorf("a body over SmallMax has no file of its own: %v", err)
	}
	if len(segments(t, dir)) != 1 {
		t.Errorf("segments = %v, want one", segments(t, dir))
	}
	for _, sp := range []*Spool{s, mustOpen(t, dir, key)} { // a reopened spool (without the option) reads them too
		ids, err := sp.IDs()
		if err != nil || len(ids) != len(bodies) {
			t.Fatalf("IDs = %v, %v; want %d", ids, err, len(bodies))
		}
		for id, want := range bodies {
			got, err := readAll(sp, id)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("read %s: %d bytes, %v; want %d bytes", id, len(got), err, len(want))
			}
		}
	}
	if _, err := s.Write("m-1", bytes.NewReader([]byte("again"))); !errors.Is(err, ErrExists) {
		t.Errorf("second Write of a small ID: %v, want ErrExists", err)
	}
}

func TestSegmentDeletedWhenEmptyAndUnread(t *testing.T) {
	t.Parallel()
	dir, key := t.TempDir(), testKey(t)
	s := mustOpenSmall(t, dir, key)
	for _, id := range []string{"a", "b"} {
		if _, err := s.Write(id, bytes.NewReader([]byte("body "+id))); err != nil {
			t.Fatal(err)
		}
	}
	// A restarted spool never appends to an old segment, so it deletes it
	// once its records are gone and no reader has it open.
	s2 := mustOpenSmall(t, dir, key)
	r, err := s2.Open("a")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		if err := s2.Remove(id); err != nil {
			t.Fatal(err)
		}
	}
	if len(segments(t, dir)) != 1 {
		t.Fatal("segment deleted while a reader had it open")
	}
	var got bytes.Buffer
	if _, err := got.ReadFrom(r); err != nil || got.String() != "body a" {
		t.Fatalf("read after Remove: %q, %v", got.String(), err)
	}
	r.Close()
	r.Close() // twice is harmless
	if segs := segments(t, dir); len(segs) != 0 {
		t.Errorf("segments left after every record was removed and read: %v", segs)
	}
	if ids, _ := s2.IDs(); len(ids) != 0 {
		t.Errorf("IDs after Remove = %v", ids)
	}
	// The removal is not durable: a spool opened on the folder as it was
	// before sees them again, which recovery handles; here the file is gone.
	if ids, _ := mustOpenSmall(t, dir, key).IDs(); len(ids) != 0 {
		t.Errorf("IDs after reopen = %v", ids)
	}
}

// A crash can leave the last records torn or damaged (never acknowledged:
// their fdatasync had not finished). Reading stops at the first bad record.
func TestSegmentTornOrDamagedTail(t *testing.T) {
	t.Parallel()
	for name, damage := range map[string]func(raw []byte, lastOff int) []byte{
		"torn":          func(raw []byte, lastOff int) []byte { return raw[:len(raw)-7] },
		"header only":   func(raw []byte, lastOff int) []byte { return raw[:lastOff+3] },
		"bad crc":       func(raw []byte, lastOff int) []byte { raw[len(raw)-1] ^= 1; return raw },
		"flipped body":  func(raw []byte, lastOff int) []byte { raw[len(raw)-20] ^= 0x80; return raw },
		"zeros":         func(raw []byte, lastOff int) []byte { clear(raw[lastOff:]); return raw },
		"garbage after": func(raw []byte, lastOff int) []byte { return append(raw, "NRSR\xffjunk"...) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir, key := t.TempDir(), testKey(t)
			s := mustOpenSmall(t, dir, key)
			for _, id := range []string{"one", "two", "three"} {
				if _, err := s.Write(id, bytes.NewReader([]byte("body of "+id))); err != nil {
					t.Fatal(err)
				}
			}
			s.mu.Lock()
			l := s.index["three"]
			s.mu.Unlock()
			lastOff := int(l.off - recordPrefix("three"))
			seg := segments(t, dir)[0]
			raw, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"one", "two"}
			if name == "garbage after" {
				want = []string{"one", "three", "two"}
			}
			if err := os.WriteFile(seg, damage(raw, lastOff), 0o600); err != nil {
				t.Fatal(err)
			}
			s2 := mustOpenSmall(t, dir, key)
			ids, err := s2.IDs()
			if err != nil || fmt.Sprint(ids) != fmt.Sprint(want) {
				t.Fatalf("IDs = %v, %v; want %v", ids, err, want)
			}
			for _, id := range want {
				if got, err := readAll(s2, id); err != nil || string(got) != "body of "+id {
					t.Errorf("read %s = %q, %v", id, got, err)
				}
			}
		})
	}
}

// The CRC only finds torn writes; the AEAD still finds tampering.
func TestSegmentTamperWithFixedCRCIsCorrupt(t *testing.T) {
	t.Parallel()
	dir, key := t.TempDir(), testKey(t)
	s := mustOpenSmall(t, dir, key)
	if _, err := s.Write("m1", bytes.NewReader([]byte("clinical body"))); err != nil {
		t.Fatal(err)
	}
	seg := segments(t, dir)[0]
	raw, _ := os.ReadFile(seg)
	raw[len(raw)-10] ^= 1
	raw = appendRecord(nil, "m1", raw[recordPrefix("m1"):len(raw)-4])
	if err := os.WriteFile(seg, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(mustOpenSmall(t, dir, key), "m1"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read of a tampered record = %v, want ErrCorrupt", err)
	}
}

func TestSmallWriteReadErrorLeavesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := mustOpenSmall(t, dir, testKey(t))
	boom := errors.New("client went away")
	if _, err := s.Write("m1", &errReader{n: 100, err: boom}); !errors.Is(err, boom) {
		t.Fatalf("Write = %v, want the reader's error", err)
	}
	if ids, _ := s.IDs(); len(ids) != 0 {
		t.Errorf("IDs after a failed Write = %v", ids)
	}
	if segs := segments(t, dir); len(segs) != 0 {
		t.Errorf("a failed Write created %v", segs)
	}
}

type errReader struct {
	n   int
	err error
}

func (r *errReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, r.err
	}
	k := min(len(p), r.n)
	r.n -= k
	return k, nil
}

func TestConcurrentSmallWrites(t *testing.T) {
	t.Parallel()
	dir, key := t.TempDir(), testKey(t)
	s := mustOpenSmall(t, dir, key)
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			id := fmt.Sprintf("c%02d", i)
			if _, err := s.Write(id, bytes.NewReader([]byte("body "+id))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	s2 := mustOpenSmall(t, dir, key)
	for i := range 64 {
		id := fmt.Sprintf("c%02d", i)
		if got, err := readAll(s2, id); err != nil || string(got) != "body "+id {
			t.Errorf("read %s = %q, %v", id, got, err)
		}
	}
}

func TestOpenWithRejectsBadSmallMax(t *testing.T) {
	t.Parallel()
	for _, n := range []int{-1, MaxSmall + 1} {
		if _, err := OpenWith(t.TempDir(), testKey(t), Options{SmallMax: n}); err == nil {
			t.Errorf("OpenWith SmallMax %d succeeded", n)
		}
	}
}

// BenchmarkSpoolWriteSmall is BenchmarkSpoolWrite with the bodies in
// shared segments.
func BenchmarkSpoolWriteSmall(b *testing.B) {
	s, err := OpenWith(b.TempDir(), testKey(b), Options{SmallMax: MaxSmall})
	if err != nil {
		b.Fatal(err)
	}
	benchParallelWrites(b, s)
}

// Readers share chunk buffers through a pool: a body read after Close must
// fail, never return bytes from a buffer another reader now owns.
func TestReadAfterCloseFails(t *testing.T) {
	t.Parallel()
	for _, size := range []int{100, MaxSmall + 1} {
		s := mustOpenSmall(t, t.TempDir(), testKey(t))
		if _, err := s.Write("m1", bytes.NewReader(randomBody(t, size))); err != nil {
			t.Fatal(err)
		}
		r, err := s.Open("m1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Read(make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
		r.Close()
		if n, err := r.Read(make([]byte, 10)); err == nil || n != 0 {
			t.Errorf("size %d: Read after Close = %d, %v; want an error", size, n, err)
		}
	}
}

// A few bodies that stay (deferred mail) must not keep whole segments of
// removed ones: compaction copies them to the current segment and the old
// segments go. The copies read the same, now and after a reopen.
func TestCompactionFreesSegments(t *testing.T) {
	t.Parallel()
	dir, key := t.TempDir(), testKey(t)
	s := mustOpenSmall(t, dir, key)
	s.segMax = 8 << 10 // a few records a segment
	body := func(id string) []byte { return bytes.Repeat([]byte(id+" "), 150) }
	var ids []string
	for i := range 60 {
		id := fmt.Sprintf("m%02d", i)
		ids = append(ids, id)
		if _, err := s.Write(id, bytes.NewReader(body(id))); err != nil {
			t.Fatal(err)
		}
	}
	before := len(segments(t, dir))
	if before < 5 {
		t.Fatalf("%d segments, want several", before)
	}
	keep := map[string]bool{}
	for i, id := range ids {
		if i%20 == 0 { // one in twenty stays queued
			keep[id] = true
			continue
		}
		if err := s.Remove(id); err != nil {
			t.Fatal(err)
		}
	}
	// Compaction runs in the background: wait (bounded) for it to settle.
	for i := 0; i < 500 && len(segments(t, dir)) > 2; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if after := len(segments(t, dir)); after > 2 {
		t.Fatalf("segments: %d before, %d after removing 19 in 20 bodies; want compaction to leave at most 2", before, after)
	}
	// A reopened spool may list removed bodies again (removal is not made
	// durable; recovery removes them), but it has every kept one.
	for n, sp := range []*Spool{s, mustOpenSmall(t, dir, key)} {
		got, err := sp.IDs()
		if err != nil || n == 0 && len(got) != len(keep) || len(got) < len(keep) {
			t.Fatalf("IDs = %v, %v; want the %d kept", got, err, len(keep))
		}
		for id := range keep {
			if b, err := readAll(sp, id); err != nil || !bytes.Equal(b, body(id)) {
				t.Fatalf("read %s after compaction: %d bytes, %v", id, len(b), err)
			}
		}
	}
}
