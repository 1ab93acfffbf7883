package smime

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
)

// allocated runs f and returns the bytes it allocated. Not parallel: the
// counter is the process's.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func repeat(unit []byte, n int) []byte { return bytes.Repeat(unit, n) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// TestBERLimits: every way of making a small input cost a large node tree
// ends in a clean errBER, and the allocation stays a small multiple of
// maxNodeSize whatever the input size.
func TestBERLimits(t *testing.T) {
	empty := []byte{0x04, 0x00}
	eoc := []byte{0x00, 0x00}
	set := []byte{0x31, 0x80}
	// 13 MB of empty OCTET STRINGs in one indefinite SET (the review's case).
	flood := cat(set, repeat(empty, 13<<20/2), eoc)
	// 40 SETs of 4000 empty strings: under the child cap, over the budget.
	var wide []byte
	wide = append(wide, set...)
	for range 40 {
		wide = cat(wide, set, repeat(empty, 4000), eoc)
	}
	wide = append(wide, eoc...)
	for _, tc := range []struct {
		name  string
		input []byte
		limit uint64 // bytes allocated at most
	}{
		{"children", flood, 1 << 20},
		{"budget", wide, 6 * maxNodeSize},
		{"depth", cat(repeat([]byte{0x30, 0x80}, maxNodeDepth+8), repeat(eoc, maxNodeDepth+8)), 1 << 20},
		{"definite depth", nestedDefinite(maxNodeDepth + 8), 1 << 20},
		{"large primitive", []byte{0x04, 0x84, 0x00, 0x50, 0x00, 0x00}, 1 << 20},
		{"large constructed", []byte{0x30, 0x84, 0x00, 0x50, 0x00, 0x00}, 1 << 20},
		{"overrun", []byte{0x30, 0x03, 0x04, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00}, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			n := allocated(func() { _, err = parseNode(tc.input) })
			if !errors.Is(err, errBER) {
				t.Errorf("parseNode error = %v, want errBER", err)
			}
			t.Logf("%s: %d bytes allocated", tc.name, n)
			if n > tc.limit {
				t.Errorf("parseNode allocated %d bytes for %d bytes of input, want at most %d", n, len(tc.input), tc.limit)
			}
		})
	}
}

func nestedDefinite(depth int) []byte {
	b := []byte{0x04, 0x00}
	for range depth {
		b = cat([]byte{0x30, byte(len(b))}, b)
		if len(b) > 120 {
			break
		}
	}
	return b
}

// TestOctetStreamNestingAllocates: a constructed encrypted content made
// of many small definite-length constructed segments is streamed without
// an allocation per segment.
func TestOctetStreamNestingAllocates(t *testing.T) {
	seg := []byte{0x24, 0x04, 0x04, 0x02, 'a', 'b'}
	const n = 20000
	input := cat([]byte{0x24, 0x80}, repeat(seg, n), []byte{0x00, 0x00})
	var out []byte
	var err error
	got := allocated(func() {
		b := newBERReader(bytes.NewReader(input))
		h, herr := b.readHeader()
		if herr != nil {
			err = herr
			return
		}
		s, serr := newOctetStream(b, h)
		if serr != nil {
			err = serr
			return
		}
		out, err = io.ReadAll(s)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2*n {
		t.Fatalf("read %d octets, want %d", len(out), 2*n)
	}
	if got > 2<<20 {
		t.Errorf("streaming %d segments allocated %d bytes, want under 2 MiB", n, got)
	}
}
