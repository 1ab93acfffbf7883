package faxtiff

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"nhsrelay/faxbridge/ccitt"
)

const fixtures = "../testdata/fax"

func mustRead(t *testing.T, name string) *File {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	f, err := Read(data, Limits{})
	if err != nil {
		t.Fatalf("Read(%s): %v", name, err)
	}
	return f
}

// refPNG loads a reference page image.
func refPNG(t *testing.T, name string) image.Image {
	t.Helper()
	fh, err := os.Open(filepath.Join(fixtures, "reference", name))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	img, err := png.Decode(fh)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// differing counts pixels where b and img disagree (img dark = black).
func differing(b *ccitt.Bitmap, img image.Image) int {
	r := img.Bounds()
	if r.Dx() != b.Width || r.Dy() != b.Height {
		return -1
	}
	n := 0
	for y := 0; y < b.Height; y++ {
		for x := 0; x < b.Width; x++ {
			g, _, _, _ := img.At(r.Min.X+x, r.Min.Y+y).RGBA()
			if (g < 0x8000) != b.Black(x, y) {
				n++
			}
		}
	}
	return n
}

func TestFixturesMatchReference(t *testing.T) {
	t.Parallel()
	cases := []struct {
		file string
		refs []string // "" = no reference image, only decode cleanly
		ydpi []float64
	}{
		{"g3-1d-fine.tif", []string{"p1-fine.png"}, []float64{196}},
		{"g3-1d-fill-lsb2msb.tif", []string{"p1-fine.png"}, []float64{196}},
		{"g3-2d-normal.tif", []string{"p1-normal.png"}, []float64{98}},
		{"g3-2d-3pages-lsb2msb.tif", []string{"p1-fine.png", "p2-fine.png", "p3-fine.png"}, []float64{196, 196, 196}},
		{"g3-2d-mixed-resolution.tif", []string{"p1-fine.png", "p1-normal.png"}, []float64{196, 98}},
		{"g4-fine.tif", []string{"p1-fine.png"}, []float64{196}},
		{"g4-3pages.tif", []string{"p1-fine.png", "p2-fine.png", "p3-fine.png"}, []float64{196, 196, 196}},
		{"g4-superfine.tif", []string{"p1-superfine.png"}, []float64{391}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			t.Parallel()
			f := mustRead(t, c.file)
			if len(f.Pages) != len(c.refs) || f.Missing != "" {
				t.Fatalf("pages = %d (missing %q), want %d", len(f.Pages), f.Missing, len(c.refs))
			}
			for i, p := range f.Pages {
				if !p.OK() || p.BadLines != 0 {
					t.Fatalf("page %d: rows %d/%d, bad lines %d, err %v", i+1, p.Rows, p.Height, p.BadLines, p.Err)
				}
				if p.YDPI != c.ydpi[i] || p.XDPI != 204 {
					t.Errorf("page %d dpi = %v×%v, want 204×%v", i+1, p.XDPI, p.YDPI, c.ydpi[i])
				}
				if d := differing(p.Image, refPNG(t, c.refs[i])); d != 0 {
					t.Errorf("page %d differs from %s in %d pixels", i+1, c.refs[i], d)
				}
			}
		})
	}
}

func TestTruncatedKeepsWhatDecodes(t *testing.T) {
	t.Parallel()
	f := mustRead(t, "truncated-g3-3pages.tif")
	if len(f.Pages) != 1 || !f.Pages[0].OK() {
		t.Fatalf("pages = %d, want page 1 whole", len(f.Pages))
	}
	if f.Missing == "" {
		t.Fatal("Missing is empty: the pages after page 1 would vanish silently")
	}
	if d := differing(f.Pages[0].Image, refPNG(t, "p1-fine.png")); d != 0 {
		t.Errorf("page 1 differs from the reference in %d pixels", d)
	}
}

func TestNotTIFF(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "II", "%PDF-1.4\n", "II*\x00\xff\xff\xff\xff"} {
		f, err := Read([]byte(in), Limits{})
		if in == "II*\x00\xff\xff\xff\xff" {
			if err != nil || len(f.Pages) != 0 || f.Missing == "" {
				t.Errorf("Read(%q) = %+v, %v; want no pages and a reason", in, f, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("Read(%q) error = nil, want ErrNotTIFF", in)
		}
	}
}
