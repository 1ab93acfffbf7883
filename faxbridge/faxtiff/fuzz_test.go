package faxtiff

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzRead: any input reads without panic or hang, within the limits, and
// every page it reports either has an image of its declared size or a
// reason.
func FuzzRead(f *testing.F) {
	names, _ := filepath.Glob(filepath.Join(fixtures, "*.tif"))
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(data[:len(data)/3]) // truncated
	}
	f.Add([]byte("II*\x00\x08\x00\x00\x00"))
	f.Add([]byte("MM\x00*\x00\x00\x00\x08\x00\x01\x01\x00\x00\x04\x00\x00\x00\x01\x7f\xff\xff\xff\x00\x00\x00\x00"))
	lim := Limits{MaxPages: 20, MaxPixels: 1 << 24}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Read(data, lim)
		if err != nil {
			return
		}
		for _, p := range file.Pages {
			if p.Image == nil && p.Err == nil {
				t.Fatalf("page %d has neither image nor reason", p.Number)
			}
			if p.Image != nil && (p.Image.Width != p.Width || p.Image.Height != p.Height) {
				t.Fatalf("page %d image %dx%d, declared %dx%d", p.Number, p.Image.Width, p.Image.Height, p.Width, p.Height)
			}
			if p.Rows < p.Height && p.Err == nil {
				t.Fatalf("page %d: %d of %d rows and no reason", p.Number, p.Rows, p.Height)
			}
		}
	})
}
