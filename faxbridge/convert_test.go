package faxbridge

import (
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"nhsrelay/faxbridge/faxtiff"
)

const fixtures = "testdata/fax"

// fixturePages: every TIFF fixture, its reference image per page ("" for
// a page that must be named unreadable), as testdata/fax/README says.
var fixturePages = map[string][]string{
	"g3-1d-fine.tif":             {"p1-fine.png"},
	"g3-1d-fill-lsb2msb.tif":     {"p1-fine.png"},
	"g3-2d-normal.tif":           {"p1-normal.png"},
	"g3-2d-3pages-lsb2msb.tif":   {"p1-fine.png", "p2-fine.png", "p3-fine.png"},
	"g3-2d-mixed-resolution.tif": {"p1-fine.png", "p1-normal.png"},
	"g4-fine.tif":                {"p1-fine.png"},
	"g4-3pages.tif":              {"p1-fine.png", "p2-fine.png", "p3-fine.png"},
	"g4-superfine.tif":           {"p1-superfine.png"},
	"truncated-g3-3pages.tif":    {"p1-fine.png"},
}

func convertFixture(t *testing.T, name string) (string, *Decoded) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	d, err := Decode(data, faxtiff.Limits{})
	if err != nil {
		t.Fatalf("Decode(%s): %v", name, err)
	}
	pdf, err := Render(d, CoverInfo{Calling: "+441632960999", Called: "+441632960001", Received: time.Now(), Ref: "test"})
	if err != nil {
		t.Fatalf("Render(%s): %v", name, err)
	}
	out := filepath.Join(t.TempDir(), strings.TrimSuffix(name, ".tif")+".pdf")
	if err := os.WriteFile(out, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	return out, d
}

var rePageSize = regexp.MustCompile(`Page +(\d+) size: +([\d.]+) x ([\d.]+) pts`)

// TestEveryFixtureConverts checks each PDF with poppler (pdfinfo, pdftoppm),
// which we did not write: page count (cover + pages), A4 size, and each
// fax page rendered at its own resolution against the reference image.
func TestEveryFixtureConverts(t *testing.T) {
	t.Parallel()
	for name, refs := range fixturePages {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pdf, d := convertFixture(t, name)
			out, err := exec.Command("pdfinfo", "-f", "1", "-l", "99", pdf).CombinedOutput()
			if err != nil {
				t.Fatalf("pdfinfo: %v\n%s", err, out)
			}
			if !regexp.MustCompile(fmt.Sprintf(`\nPages: +%d\n`, 1+len(refs))).Match(out) {
				t.Fatalf("pdfinfo: want %d pages\n%s", 1+len(refs), out)
			}
			sizes := rePageSize.FindAllStringSubmatch(string(out), -1)
			if len(sizes) != 1+len(refs) {
				t.Fatalf("pdfinfo lists %d page sizes, want %d", len(sizes), 1+len(refs))
			}
			for _, s := range sizes {
				w, _ := strconv.ParseFloat(s[2], 64)
				h, _ := strconv.ParseFloat(s[3], 64)
				if math.Abs(w/72*25.4-210) > 2 || math.Abs(h/72*25.4-297) > 2 {
					t.Errorf("page %s is %.1f × %.1f mm, want A4", s[1], w/72*25.4, h/72*25.4)
				}
			}
			shown := 0
			for _, p := range d.Pages {
				if p.Image == nil {
					continue
				}
				shown++
				got := renderPage(t, pdf, 1+shown, p)
				ref := loadPNG(t, filepath.Join(fixtures, "reference", refs[shown-1]))
				if frac := mismatch(got, ref); frac > 0.005 {
					t.Errorf("page %d: %.2f%% of pixels differ from %s", shown, 100*frac, refs[shown-1])
				}
			}
		})
	}
}

// renderPage renders PDF page n with pdftoppm at the scale that maps the
// fax image 1:1 to pixels, cropped to where the image is placed (true
// physical size, scaled down only to fit A4, centred).
func renderPage(t *testing.T, pdf string, n int, p *faxtiff.Page) image.Image {
	t.Helper()
	const a4W, a4H = 595.28, 841.89
	w, h := float64(p.Width)/p.XDPI*72, float64(p.Height)/p.YDPI*72
	s := min(1, a4W/w, a4H/h)
	rx, ry := p.XDPI/s, p.YDPI/s
	x := int(math.Round((a4W - w*s) / 2 / 72 * rx))
	y := int(math.Round((a4H - h*s) / 2 / 72 * ry))
	prefix := filepath.Join(t.TempDir(), "page")
	args := []string{"-f", strconv.Itoa(n), "-l", strconv.Itoa(n), "-singlefile", "-png", "-mono",
		"-rx", fmt.Sprint(rx), "-ry", fmt.Sprint(ry),
		"-x", strconv.Itoa(x), "-y", strconv.Itoa(y), "-W", strconv.Itoa(p.Width), "-H", strconv.Itoa(p.Height), pdf, prefix}
	if out, err := exec.Command("pdftoppm", args...).CombinedOutput(); err != nil {
		t.Fatalf("pdftoppm %v: %v\n%s", args, err, out)
	}
	return loadPNG(t, prefix+".png")
}

func loadPNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return img
}

// mismatch is the fraction of pixels whose darkness differs (1 if the
// sizes differ).
func mismatch(a, b image.Image) float64 {
	ga, gb := gray(a), gray(b)
	if ga.Rect.Dx() != gb.Rect.Dx() || ga.Rect.Dy() != gb.Rect.Dy() {
		return 1
	}
	diff := 0
	for i := range ga.Pix {
		if (ga.Pix[i] < 0x80) != (gb.Pix[i] < 0x80) {
			diff++
		}
	}
	return float64(diff) / float64(len(ga.Pix))
}

func gray(img image.Image) *image.Gray {
	r := img.Bounds()
	g := image.NewGray(image.Rect(0, 0, r.Dx(), r.Dy()))
	draw.Draw(g, g.Rect, img, r.Min, draw.Src)
	return g
}

func TestTruncatedNamesTheMissingPages(t *testing.T) {
	t.Parallel()
	pdf, d := convertFixture(t, "truncated-g3-3pages.tif")
	if len(d.Problems) == 0 {
		t.Fatal("no problem reported for a truncated file")
	}
	text, err := exec.Command("pdftotext", "-f", "1", "-l", "1", pdf, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v\n%s", err, text)
	}
	if !strings.Contains(string(text), "after page 1 could not be read") {
		t.Errorf("cover page does not name the unreadable pages:\n%s", text)
	}
}

func TestNothingUsable(t *testing.T) {
	t.Parallel()
	for _, in := range [][]byte{nil, []byte("not a tiff"), []byte("II*\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00")} {
		_, err := Decode(in, faxtiff.Limits{})
		if !errors.Is(err, ErrNothingUsable) {
			t.Errorf("Decode(%q) error = %v, want ErrNothingUsable", in, err)
		}
	}
}
