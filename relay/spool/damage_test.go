package spool

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
)

// writeTen writes ten small bodies into one segment and returns the
// segment's path and the offset of each record in it.
func writeTen(t *testing.T, dir string, key []byte) (seg string, ids []string, offs []int) {
	t.Helper()
	s := mustOpenSmall(t, dir, key)
	for i := range 10 {
		id := fmt.Sprintf("m%02d", i)
		if _, err := s.Write(id, bytes.NewReader([]byte("body of "+id))); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	s.mu.Lock()
	for _, id := range ids {
		offs = append(offs, int(s.index[id].off-recordPrefix(id)))
	}
	s.mu.Unlock()
	return segments(t, dir)[0], ids, offs
}

// One flipped bit in record 2 (index 1) of a segment, wherever it falls,
// loses record 2 alone: the nine others are read back whole, and the
// damage is reported, naming the message when the record's header is
// still readable.
func TestSegmentBitFlipStaysInItsRecord(t *testing.T) {
	t.Parallel()
	idLen := len("m01")
	for _, tc := range []struct {
		name   string
		at     int  // offset in record 2
		namesM bool // the damage report can name m01
	}{
		{"magic", 1, false},
		{"id length", len(recMagic), false},
		{"id", len(recMagic) + 2, false},
		{"sealed length", len(recMagic) + 1 + idLen + 2, false},
		{"header crc", len(recMagic) + 1 + idLen + 5, false},
		{"sealed header", int(recordPrefix("m01")) + 3, true},
		{"sealed chunk", int(recordPrefix("m01")) + headerSize + 4, true},
		{"sealed tag", int(recordPrefix("m01")) + headerSize + len("body of m01") + 2, true},
		{"trailer crc", int(recordPrefix("m01")) + headerSize + len("body of m01") + tagSize + 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir, key := t.TempDir(), testKey(t)
			seg, ids, offs := writeTen(t, dir, key)
			raw, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			raw[offs[1]+tc.at] ^= 0x10
			if err := os.WriteFile(seg, raw, 0o600); err != nil {
				t.Fatal(err)
			}
			s := mustOpenSmall(t, dir, key)
			got, _ := s.IDs()
			want := slices.Delete(slices.Clone(ids), 1, 2)
			if !slices.Equal(got, want) {
				t.Fatalf("IDs after the flip = %v, want %v", got, want)
			}
			for _, id := range want {
				if b, err := readAll(s, id); err != nil || string(b) != "body of "+id {
					t.Errorf("read %s = %q, %v", id, b, err)
				}
			}
			d := s.Damaged()
			if len(d) != 1 || d[0].Torn || d[0].Offset != int64(offs[1]) {
				t.Fatalf("Damaged = %v, want one stretch at %d, not torn", d, offs[1])
			}
			if tc.namesM != (d[0].ID == "m01") {
				t.Errorf("Damaged()[0].ID = %q; want it named: %v", d[0].ID, tc.namesM)
			}
			if _, err := s.Open("m01"); err == nil {
				t.Error("the damaged body opens")
			}
		})
	}
}

// A torn tail (a crash during a write that was never acknowledged) is
// reported as torn; the records before it are whole; zeros are not damage.
func TestSegmentTornTailIsMarkedTorn(t *testing.T) {
	t.Parallel()
	for name, cut := range map[string]func(raw []byte, last int) []byte{
		"inside sealed": func(raw []byte, last int) []byte { return raw[:len(raw)-9] },
		"inside header": func(raw []byte, last int) []byte { return raw[:last+6] },
		"zeros after":   func(raw []byte, last int) []byte { return append(raw, make([]byte, 4096)...) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir, key := t.TempDir(), testKey(t)
			seg, ids, offs := writeTen(t, dir, key)
			raw, _ := os.ReadFile(seg)
			if err := os.WriteFile(seg, cut(raw, offs[9]), 0o600); err != nil {
				t.Fatal(err)
			}
			s := mustOpenSmall(t, dir, key)
			got, _ := s.IDs()
			d := s.Damaged()
			if name == "zeros after" {
				if len(got) != 10 || len(d) != 0 {
					t.Fatalf("IDs = %v, Damaged = %v; want all ten, no damage", got, d)
				}
				return
			}
			if !slices.Equal(got, ids[:9]) || len(d) != 1 || !d[0].Torn {
				t.Fatalf("IDs = %v, Damaged = %v; want the first nine and one torn tail", got, d)
			}
		})
	}
}

// Segments written before record framing (version 1) are still read.
func TestSegmentVersion1Read(t *testing.T) {
	t.Parallel()
	dir, key := t.TempDir(), testKey(t)
	seg, ids, offs := writeTen(t, dir, key)
	raw, _ := os.ReadFile(seg)
	var v1 []byte
	for i, id := range ids {
		start := offs[i] + int(recordPrefix(id))
		n := len(raw) - start - 4
		if i+1 < len(offs) {
			n = offs[i+1] - start - 4
		}
		v1 = appendRecordV1(v1, id, raw[start:start+n])
	}
	if err := os.WriteFile(seg, v1, 0o600); err != nil {
		t.Fatal(err)
	}
	s := mustOpenSmall(t, dir, key)
	for _, id := range ids {
		if b, err := readAll(s, id); err != nil || string(b) != "body of "+id {
			t.Errorf("read %s = %q, %v", id, b, err)
		}
	}
}

// appendRecordV1 is the record format before per-record header CRCs.
func appendRecordV1(dst []byte, id string, sealed []byte) []byte {
	start := len(dst)
	dst = append(dst, recMagicV1...)
	dst = append(dst, byte(len(id)))
	dst = append(dst, id...)
	dst = append(dst, byte(len(sealed)>>24), byte(len(sealed)>>16), byte(len(sealed)>>8), byte(len(sealed)))
	dst = append(dst, sealed...)
	sum := crcOf(dst[start:])
	return append(dst, byte(sum>>24), byte(sum>>16), byte(sum>>8), byte(sum))
}

// A body file cut short anywhere, or changed in its header or last chunk,
// is found when the spool opens (not listed, reported damaged); a change
// in an earlier chunk is found when the body is read.
func TestBodyFileDamageFoundAtOpen(t *testing.T) {
	t.Parallel()
	chunk := func(i int) int { return headerSize + i*sealedChunk }
	const size = 5*chunkSize/2 + 100 // three chunks
	for _, tc := range []struct {
		name   string
		edit   func([]byte) []byte
		atOpen bool
	}{
		{"header magic", func(b []byte) []byte { b[1] ^= 4; return b }, true},
		{"nonce prefix", func(b []byte) []byte { b[headerSize-2] ^= 1; return b }, true},
		{"first chunk", func(b []byte) []byte { b[chunk(0)+100] ^= 1; return b }, false},
		{"middle chunk tag", func(b []byte) []byte { b[chunk(2)-1] ^= 0x40; return b }, false},
		{"last chunk", func(b []byte) []byte { b[chunk(2)+7] ^= 2; return b }, true},
		{"last byte", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, true},
		{"cut at a chunk boundary", func(b []byte) []byte { return b[:chunk(2)] }, true},
		{"cut mid chunk", func(b []byte) []byte { return b[:chunk(1)+500] }, true},
		{"cut to the header", func(b []byte) []byte { return b[:headerSize] }, true},
		{"cut inside the header", func(b []byte) []byte { return b[:10] }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir, key := t.TempDir(), testKey(t)
			s := mustOpen(t, dir, key)
			for _, id := range []string{"big", "other"} {
				if _, err := s.Write(id, bytes.NewReader(randomBody(t, size))); err != nil {
					t.Fatal(err)
				}
			}
			raw, _ := os.ReadFile(s.path("big"))
			if err := os.WriteFile(s.path("big"), tc.edit(raw), 0o600); err != nil {
				t.Fatal(err)
			}
			s2 := mustOpen(t, dir, key)
			ids, _ := s2.IDs()
			d := s2.Damaged()
			if tc.atOpen {
				if !slices.Equal(ids, []string{"other"}) || len(d) != 1 || d[0].ID != "big" {
					t.Fatalf("IDs = %v, Damaged = %v; want big reported damaged at open", ids, d)
				}
			} else if len(ids) != 2 || len(d) != 0 {
				t.Fatalf("IDs = %v, Damaged = %v; want both listed (found at read)", ids, d)
			}
			if _, err := readAll(s2, "big"); !errors.Is(err, ErrCorrupt) {
				t.Errorf("read of the damaged body = %v, want ErrCorrupt", err)
			}
			if _, err := readAll(s2, "other"); err != nil {
				t.Errorf("read of the other body = %v", err)
			}
			if err := s2.Remove("big"); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(s2.path("big")); !os.IsNotExist(err) {
				t.Errorf("Remove left the damaged file: %v", err)
			}
		})
	}
}
