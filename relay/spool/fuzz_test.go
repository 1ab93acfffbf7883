package spool

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
)

// FuzzOpen feeds arbitrary bytes to the reader as a spool file. Anything
// but the files the spool itself wrote must fail with ErrCorrupt or
// ErrWrongKey: never panic, never a silently short body. (Forging a chunk
// means forging Poly1305; the tamper tests cover the edits that matter.)
func FuzzOpen(f *testing.F) {
	key := bytes.Repeat([]byte{7}, KeySize)
	seedDir := f.TempDir()
	seeder := mustOpen(f, seedDir, key)
	for i, body := range []string{"", "x", strings.Repeat("referral\r\n", 7000)} {
		id := "seed" + string(rune('a'+i))
		if _, err := seeder.Write(id, strings.NewReader(body)); err != nil {
			f.Fatal(err)
		}
		raw, err := os.ReadFile(seeder.path(id))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
		f.Add(raw[:len(raw)/2])
	}
	f.Add([]byte{})
	f.Add([]byte(magic))
	f.Add([]byte(magic + "\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// The seeds were sealed under their own IDs; try them all. The
		// reader is fed from memory so the fuzzer spends its time parsing.
		for _, id := range []string{"seeda", "seedb", "seedc"} {
			got, err := openBytes(seeder, id, data)
			if err == nil {
				// Only an untouched seed opens (fuzz workers rebuild the
				// seeds with fresh nonces, so compare shape, not bytes):
				// every plaintext byte is accounted for by the file's length.
				chunks := len(got)/chunkSize + 1
				if len(data) != headerSize+len(got)+chunks*tagSize {
					t.Fatalf("%d-byte file opened as %s with %d bytes: short read", len(data), id, len(got))
				}
				continue
			}
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongKey) {
				t.Fatalf("error %v is neither ErrCorrupt nor ErrWrongKey", err)
			}
			if errors.Is(err, io.EOF) {
				t.Fatalf("error wraps io.EOF: %v", err)
			}
		}
	})
}

// openBytes reads data as Spool.Open would read id's file.
func openBytes(s *Spool, id string, data []byte) ([]byte, error) {
	o, err := newOpener(bytes.NewReader(data), io.NopCloser(nil), s.aead, s.kid, id)
	if err != nil {
		return nil, err
	}
	defer o.Close()
	return io.ReadAll(o)
}

// FuzzScanSegment feeds arbitrary bytes to the segment parser: it must
// never panic; every record it accepts and every stretch it reports lies
// inside the file, in order and without overlap; and a whole segment the
// spool wrote, with bytes appended, still yields all its records.
func FuzzScanSegment(f *testing.F) {
	key := bytes.Repeat([]byte{7}, KeySize)
	dir := f.TempDir()
	s, err := OpenWith(dir, key, Options{SmallMax: MaxSmall})
	if err != nil {
		f.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c"} {
		if _, err := s.Write(id, strings.NewReader("body of "+id)); err != nil {
			f.Fatal(err)
		}
	}
	s.mu.Lock()
	raw, err := os.ReadFile(s.cur.name)
	s.mu.Unlock()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	flipped := bytes.Clone(raw)
	flipped[len(raw)/2] ^= 1
	f.Add(flipped)
	f.Add(raw[:len(raw)-5])
	f.Add(append(bytes.Clone(raw[:9]), raw...))
	f.Add([]byte("NRS2\x01a\x00\x00\x00\x30"))
	f.Add([]byte("NRSR"))
	f.Fuzz(func(t *testing.T, data []byte) {
		end := int64(0)
		var n int
		valid := scanSegment(data, func(id string, off, size int64) {
			if off < end || off+size > int64(len(data)) || validID(id) != nil {
				t.Fatalf("record %q at %d+%d outside the file or out of order (end %d, len %d)", id, off, size, end, len(data))
			}
			end = off + size
			n++
		}, func(id string, off, size int64, torn bool, why string) {
			if off < 0 || size <= 0 || off+size > int64(len(data)) || why == "" {
				t.Fatalf("damage at %d+%d in a %d-byte file: %q", off, size, len(data), why)
			}
		})
		if valid < 0 || valid > int64(len(data)) {
			t.Fatalf("valid prefix %d of a %d-byte file", valid, len(data))
		}
		if bytes.HasPrefix(data, raw) && n < 3 {
			t.Fatalf("a whole segment with %d bytes after it yields %d records, want 3", len(data)-len(raw), n)
		}
	})
}
