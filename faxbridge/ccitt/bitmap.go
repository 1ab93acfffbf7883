package ccitt

import "math/bits"

// Bitmap is a bilevel image, one bit a pixel, rows packed from the most
// significant bit; a 1 bit is black, whatever the source's photometric
// interpretation.
type Bitmap struct {
	Width, Height int
	Stride        int // bytes per row
	Pix           []byte
}

// NewBitmap returns a white w×h bitmap. The caller bounds w and h.
func NewBitmap(w, h int) *Bitmap {
	stride := (w + 7) / 8
	return &Bitmap{Width: w, Height: h, Stride: stride, Pix: make([]byte, stride*h)}
}

// Row returns row y's bytes.
func (b *Bitmap) Row(y int) []byte { return b.Pix[y*b.Stride : (y+1)*b.Stride] }

// Black reports whether pixel (x, y) is black.
func (b *Bitmap) Black(x, y int) bool {
	return b.Pix[y*b.Stride+x/8]&(0x80>>(x%8)) != 0
}

// fillRow paints row y from its changing elements (T.4 §4.2.1.3.1: the
// positions where the colour changes, the line starting white).
func (b *Bitmap) fillRow(y int, changes []int) {
	row := b.Row(y)
	for i := 0; i < len(changes); i += 2 {
		end := b.Width
		if i+1 < len(changes) {
			end = changes[i+1]
		}
		fillBits(row, changes[i], min(end, b.Width))
	}
}

// fillBits sets bits [from, to) of row.
func fillBits(row []byte, from, to int) {
	for from < to && from%8 != 0 {
		row[from/8] |= 0x80 >> (from % 8)
		from++
	}
	for ; from+8 <= to; from += 8 {
		row[from/8] = 0xff
	}
	for ; from < to; from++ {
		row[from/8] |= 0x80 >> (from % 8)
	}
}

// rowChanges appends to dst the changing elements of row y: a byte at a
// time, the next change being the first bit that differs from the
// current colour.
func (b *Bitmap) rowChanges(dst []int, y int) []int {
	row := b.Row(y)
	black := false
	for i, r := range row {
		c := r
		if black {
			c = ^c
		}
		for c != 0 {
			lz := bits.LeadingZeros8(c)
			x := i*8 + lz
			if x >= b.Width {
				return dst // padding bits past the last pixel
			}
			dst = append(dst, x)
			black = !black
			c = ^c & (0xff >> (lz + 1))
		}
	}
	return dst
}

// Invert flips every pixel (for PhotometricInterpretation 1, BlackIsZero).
func (b *Bitmap) Invert() {
	for i := range b.Pix {
		b.Pix[i] = ^b.Pix[i]
	}
	if r := b.Width % 8; r != 0 {
		mask := byte(0xff) << (8 - r)
		for y := 0; y < b.Height; y++ {
			b.Pix[y*b.Stride+b.Stride-1] &= mask
		}
	}
}
