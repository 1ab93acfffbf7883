package faxtiff

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// tiffOf builds a little-endian TIFF with one IFD per page, each an
// uncompressed all-white strip of the given size (data only as long as
// dataLen), so limits can be tested without big files.
func tiffOf(pages [][2]uint32, comp uint16, dataLen int) []byte {
	le := binary.LittleEndian
	out := []byte("II*\x00\x00\x00\x00\x00")
	data := len(out)
	out = append(out, make([]byte, dataLen)...)
	le.PutUint32(out[4:], uint32(len(out)))
	for i, p := range pages {
		type entry struct {
			tag, typ uint16
			val      uint32
		}
		es := []entry{{256, 4, p[0]}, {257, 4, p[1]}, {259, 3, uint32(comp)}, {273, 4, uint32(data)},
			{278, 4, p[1]}, {279, 4, uint32(dataLen)}}
		ifd := make([]byte, 2+12*len(es)+4)
		le.PutUint16(ifd, uint16(len(es)))
		for j, e := range es {
			b := ifd[2+12*j:]
			le.PutUint16(b, e.tag)
			le.PutUint16(b[2:], e.typ)
			le.PutUint32(b[4:], 1)
			if e.typ == 3 {
				le.PutUint16(b[8:], uint16(e.val))
			} else {
				le.PutUint32(b[8:], e.val)
			}
		}
		start := len(out)
		if i < len(pages)-1 {
			le.PutUint32(ifd[len(ifd)-4:], uint32(start+len(ifd)))
		}
		out = append(out, ifd...)
	}
	return out
}

func TestLimitsStopBombs(t *testing.T) {
	t.Parallel()
	lim := Limits{MaxPages: 3, MaxWidth: 2432, MaxHeight: 5000, MaxPixels: 3 * 1728 * 2300}
	cases := []struct {
		name  string
		pages [][2]uint32
		comp  uint16
		want  []string // per page: "" ok, else a word its error holds
		miss  string
	}{
		{"absurd width", [][2]uint32{{1 << 30, 10}}, 1, []string{"more than"}, ""},
		{"absurd height", [][2]uint32{{1728, 1 << 31}}, 1, []string{"more than"}, ""},
		{"zero size", [][2]uint32{{0, 0}}, 1, []string{"no size"}, ""},
		{"pixel budget", [][2]uint32{{2432, 4000}, {2432, 4000}}, 1, []string{"", "exceed"}, ""},
		{"too many pages", [][2]uint32{{8, 1}, {8, 1}, {8, 1}, {8, 1}}, 1, []string{"", "", ""}, "more than 3 pages"},
		{"JBIG colour fax", [][2]uint32{{1728, 10}}, CompJBIG, []string{"attached TIFF"}, ""},
		{"JPEG", [][2]uint32{{1728, 10}}, CompJPEG, []string{"attached TIFF"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dataLen := 0
			if c.pages[0][0] <= 2432 && c.pages[0][1] <= 5000 {
				dataLen = int(c.pages[0][0]+7) / 8 * int(c.pages[0][1])
			}
			f, err := Read(tiffOf(c.pages, c.comp, dataLen), lim)
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Pages) != len(c.want) {
				t.Fatalf("pages = %d, want %d", len(f.Pages), len(c.want))
			}
			for i, w := range c.want {
				p := f.Pages[i]
				if w == "" && !p.OK() || w != "" && (p.Err == nil || !strings.Contains(p.Err.Error(), w)) {
					t.Errorf("page %d: err %v, want %q", i+1, p.Err, w)
				}
			}
			if !strings.Contains(f.Missing, c.miss) || (c.miss == "") != (f.Missing == "") {
				t.Errorf("Missing = %q, want %q", f.Missing, c.miss)
			}
		})
	}
}

func TestUnsupportedIsNamed(t *testing.T) {
	t.Parallel()
	f, _ := Read(tiffOf([][2]uint32{{16, 2}}, CompJBIG, 4), Limits{})
	if p := f.Pages[0]; p.Image != nil || !errors.Is(p.Err, errUnsupported) {
		t.Errorf("JBIG page: image %v, err %v", p.Image != nil, p.Err)
	}
}
