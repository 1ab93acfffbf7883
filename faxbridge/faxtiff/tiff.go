package faxtiff

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrNotTIFF means the data does not start with a TIFF header.
var ErrNotTIFF = errors.New("faxtiff: not a TIFF file")

// TIFF 6.0 tags (§8 and the sections named).
const (
	tagNewSubfileType   = 254
	tagImageWidth       = 256
	tagImageLength      = 257
	tagBitsPerSample    = 258
	tagCompression      = 259
	tagPhotometric      = 262
	tagFillOrder        = 266
	tagImageDescription = 270
	tagStripOffsets     = 273
	tagSamplesPerPixel  = 277
	tagRowsPerStrip     = 278
	tagStripByteCounts  = 279
	tagXResolution      = 282
	tagYResolution      = 283
	tagT4Options        = 292 // §11
	tagResolutionUnit   = 296
	tagPageNumber       = 297
	tagPredictor        = 317
)

// Compression values (TIFF 6.0 §8 and §11, TIFF/EP for JBIG).
const (
	CompNone     = 1
	CompRLE      = 2 // CCITT modified Huffman, no EOLs
	CompG3       = 3
	CompG4       = 4
	CompLZW      = 5
	CompJPEGOld  = 6
	CompJPEG     = 7
	CompPackBits = 32773
	CompJBIG     = 34661 // ITU-T T.85, used by colour-capable fax servers
)

// field is one IFD entry.
type field struct {
	tag, typ uint16
	count    uint32
	value    []byte // the value bytes (inline or at the offset), nil if out of the file
}

// typeSize is the byte size of TIFF field types 1..12 (TIFF 6.0 §2).
var typeSize = [...]int{0, 1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8}

type reader struct {
	data []byte
	bo   binary.ByteOrder
}

func newReader(data []byte) (*reader, uint32, error) {
	if len(data) < 8 {
		return nil, 0, ErrNotTIFF
	}
	r := &reader{data: data}
	switch string(data[:2]) {
	case "II":
		r.bo = binary.LittleEndian
	case "MM":
		r.bo = binary.BigEndian
	default:
		return nil, 0, ErrNotTIFF
	}
	if r.bo.Uint16(data[2:]) != 42 {
		return nil, 0, ErrNotTIFF
	}
	return r, r.bo.Uint32(data[4:]), nil
}

// ifd reads the directory at off: its fields by tag, and the next offset.
func (r *reader) ifd(off uint32) (map[uint16]field, uint32, error) {
	if uint64(off)+2 > uint64(len(r.data)) {
		return nil, 0, fmt.Errorf("its directory is at byte %d but the file ends at byte %d (file truncated)", off, len(r.data))
	}
	n := int(r.bo.Uint16(r.data[off:]))
	start := int(off) + 2
	if start+12*n+4 > len(r.data) {
		return nil, 0, fmt.Errorf("its directory at byte %d runs past the end of the file (file truncated)", off)
	}
	fields := make(map[uint16]field, n)
	for i := range n {
		e := r.data[start+12*i:]
		f := field{tag: r.bo.Uint16(e), typ: r.bo.Uint16(e[2:]), count: r.bo.Uint32(e[4:])}
		if int(f.typ) >= len(typeSize) || f.typ == 0 {
			continue // unknown type: TIFF 6.0 §2 says readers skip it
		}
		size := uint64(typeSize[f.typ]) * uint64(f.count)
		if size <= 4 {
			f.value = e[8 : 8+size]
		} else if o := uint64(r.bo.Uint32(e[8:])); o+size <= uint64(len(r.data)) {
			f.value = r.data[o : o+size]
		}
		fields[f.tag] = f
	}
	return fields, r.bo.Uint32(r.data[start+12*n:]), nil
}

// uints returns an integer field's values (BYTE, SHORT or LONG).
func (r *reader) uints(f field) []uint64 {
	var out []uint64
	switch f.typ {
	case 1:
		for _, b := range f.value {
			out = append(out, uint64(b))
		}
	case 3:
		for i := 0; i+2 <= len(f.value); i += 2 {
			out = append(out, uint64(r.bo.Uint16(f.value[i:])))
		}
	case 4:
		for i := 0; i+4 <= len(f.value); i += 4 {
			out = append(out, uint64(r.bo.Uint32(f.value[i:])))
		}
	}
	return out
}

// uint returns the first value of tag, or def if absent.
func (r *reader) uint(fields map[uint16]field, tag uint16, def uint64) uint64 {
	if v := r.uints(fields[tag]); len(v) > 0 {
		return v[0]
	}
	return def
}

// rational returns a RATIONAL field's first value, or 0.
func (r *reader) rational(f field) float64 {
	if f.typ != 5 || len(f.value) < 8 {
		if v := r.uints(f); len(v) > 0 {
			return float64(v[0])
		}
		return 0
	}
	num, den := r.bo.Uint32(f.value), r.bo.Uint32(f.value[4:])
	if den == 0 {
		return 0
	}
	v := float64(num) / float64(den)
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return 0
	}
	return v
}

// ascii returns an ASCII field as a string, up to its first NUL.
func ascii(f field) string {
	s := f.value
	for i, b := range s {
		if b == 0 {
			s = s[:i]
			break
		}
	}
	return string(s)
}
