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
