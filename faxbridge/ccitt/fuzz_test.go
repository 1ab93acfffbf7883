package ccitt

import (
	"testing"
)

// FuzzDecode: any data, in any coding, decodes without panic or hang into
// a bitmap of the size asked, reporting no more rows than it has; and a
// page that decodes whole as MMR re-encodes to the same pixels.
func FuzzDecode(f *testing.F) {
	page := randomPage(64, 40, 7)
	f.Add(EncodeG4(page), uint8(MMR), uint16(64), uint16(40))
	f.Add([]byte{0x00, 0x10, 0x01, 0x35, 0x00, 0x10, 0x01}, uint8(MH), uint16(1728), uint16(3))
	f.Add([]byte{0x00, 0x18, 0x00, 0x80, 0x01, 0xa0}, uint8(MR), uint16(1728), uint16(4))
	f.Add([]byte{0x35, 0x00, 0x35, 0x00}, uint8(RLE), uint16(8), uint16(2))
	f.Add([]byte{}, uint8(MMR), uint16(1), uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, coding uint8, w, h uint16) {
		if w == 0 || h == 0 || int(w)*int(h) > 1<<22 {
			return
		}
		dst := NewBitmap(int(w), int(h))
		res, err := Decode(data, Coding(coding%4), dst)
		if res.Rows > int(h) || res.Rows < 0 {
			t.Fatalf("rows %d of %d", res.Rows, h)
		}
		if err == nil && Coding(coding%4) == MMR && res.Rows == int(h) {
			again := NewBitmap(int(w), int(h))
			if _, err := Decode(EncodeG4(dst), MMR, again); err != nil || string(again.Pix) != string(dst.Pix) {
				t.Fatalf("re-encoded page differs (%v)", err)
			}
		}
	})
}
