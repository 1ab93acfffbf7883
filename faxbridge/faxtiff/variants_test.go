package faxtiff

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestVariantsWrittenByLibtiff rewrites a 3-page fixture with libtiff's
// tiffcp (a writer we did not write) in every bilevel compression, strip
// size and fill order fax servers use, and checks each page against the
// reference images.
func TestVariantsWrittenByLibtiff(t *testing.T) {
	t.Parallel()
	refs := []string{"p1-fine.png", "p2-fine.png", "p3-fine.png"}
	for _, args := range [][]string{
		{"-c", "none"},
		{"-c", "packbits", "-r", "100"},
		{"-c", "lzw", "-r", "300"},
		{"-c", "g3:1d", "-r", "64"},
		{"-c", "g3:2d:fill", "-f", "lsb2msb", "-r", "500"},
		{"-c", "g4", "-r", "7"},
	} {
		t.Run(args[1], func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "v.tif")
			cmd := exec.Command("tiffcp", append(args, filepath.Join(fixtures, "g4-3pages.tif"), out)...)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("tiffcp %v: %v\n%s", args, err, b)
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			f, err := Read(data, Limits{})
			if err != nil || len(f.Pages) != 3 {
				t.Fatalf("Read = %v pages, %v", f, err)
			}
			for i, p := range f.Pages {
				if !p.OK() {
					t.Fatalf("page %d: %v", i+1, p.Err)
				}
				if d := differing(p.Image, refPNG(t, refs[i])); d != 0 {
					t.Errorf("page %d differs in %d pixels", i+1, d)
				}
			}
		})
	}
}
