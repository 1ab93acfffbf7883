package faxbridge

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"nhsrelay/faxbridge/faxtiff"
)

// BenchmarkConvertCorpus converts every fixture (decode, re-encode G4,
// PDF) and reports pages/s; scripts/bench-fax compares the command with
// tiff2pdf on the same files.
func BenchmarkConvertCorpus(b *testing.B) {
	names, _ := filepath.Glob(filepath.Join(fixtures, "*.tif"))
	var files [][]byte
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			b.Fatal(err)
		}
		files = append(files, data)
	}
	pages := 0
	b.ResetTimer()
	for b.Loop() {
		for _, data := range files {
			d, err := Decode(data, faxtiff.Limits{})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := Render(d, CoverInfo{Received: time.Unix(0, 0)}); err != nil {
				b.Fatal(err)
			}
			pages += d.Shown()
		}
	}
	b.ReportMetric(float64(pages)/b.Elapsed().Seconds(), "pages/s")
}
