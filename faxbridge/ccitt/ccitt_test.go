package ccitt

import (
	"bytes"
	"image"
	"math/rand/v2"
	"testing"

	xccitt "golang.org/x/image/ccitt"
)

// randomPage draws a page of random black blocks and dots: long runs,
// short runs and runs at both edges, so every mode and code length occurs.
func randomPage(w, h int, seed uint64) *Bitmap {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := NewBitmap(w, h)
	for range 300 {
		x0, y0 := rng.IntN(w), rng.IntN(h)
		x1, y1 := min(w, x0+1+rng.IntN(w/2+1)), min(h, y0+1+rng.IntN(30))
		for y := y0; y < y1; y++ {
			fillBits(b.Row(y), x0, x1)
		}
	}
	for range 2000 {
		x, y := rng.IntN(w), rng.IntN(h)
		b.Row(y)[x/8] ^= 0x80 >> (x % 8)
	}
	return b
}

// TestG4RoundTrip: what EncodeG4 writes, golang.org/x/image/ccitt (an
// implementation we did not write) and Decode both read back unchanged.
func TestG4RoundTrip(t *testing.T) {
	t.Parallel()
	for _, size := range [][2]int{{1728, 200}, {2432, 50}, {13, 7}, {1, 3}} {
		b := randomPage(size[0], size[1], uint64(size[0]))
		enc := EncodeG4(b)

		got := NewBitmap(b.Width, b.Height)
		if res, err := Decode(enc, MMR, got); err != nil || res.Rows != b.Height {
			t.Fatalf("%v: Decode = %+v, %v", size, res, err)
		}
		if !bytes.Equal(got.Pix, b.Pix) {
			t.Fatalf("%v: Decode(EncodeG4(b)) != b", size)
		}

		dst := image.NewGray(image.Rect(0, 0, b.Width, b.Height))
		if err := xccitt.DecodeIntoGray(dst, bytes.NewReader(enc), xccitt.MSB, xccitt.Group4,
			&xccitt.Options{Invert: false}); err != nil {
			t.Fatalf("%v: x/image/ccitt: %v", size, err)
		}
		for y := 0; y < b.Height; y++ {
			for x := 0; x < b.Width; x++ {
				if (dst.GrayAt(x, y).Y < 0x80) != b.Black(x, y) {
					t.Fatalf("%v: x/image/ccitt reads pixel (%d,%d) differently", size, x, y)
				}
			}
		}
	}
}
