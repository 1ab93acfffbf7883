package ods

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
)

// countingReader counts the bytes Parse took.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestParseDiagnosesOtherFiles: a file that is not an epraccur.csv stops
// Parse early with what it looks like, instead of one rejected row per
// line; an empty file says it is empty; a real one is not misjudged.
func TestParseDiagnosesOtherFiles(t *testing.T) {
	t.Parallel()
	read := func(name string) string {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	// 244,799 lines of noise, as when the wrong download was imported.
	var garbage strings.Builder
	for i := range 244799 {
		garbage.WriteString("\x89PNG\x00\x1a\x0a")
		garbage.WriteString(strings.Repeat(string(rune('a'+i%26)), 30))
		garbage.WriteString("\n")
	}
	for _, tc := range []struct{ name, input, want string }{
		{"garbage", garbage.String(), "binary data"},
		{"another ODS file, same layout", read("etrust-sample.csv"), "looks like another ODS file in the same 27-column layout"},
		{"successor file", read("succ-sample.csv"), "succ.csv: import it with -successors"},
		{"zip", "PK\x03\x04\x14\x00\x00\x00\x08\x00epraccur.csv\n", "zip archive"},
		{"spreadsheet export", strings.Repeat("Code;Name;Postcode\n", 5), "every row has 1 columns; an epraccur.csv row has 27"},
		{"27 columns, none good", strings.Repeat(row(map[int]string{13: "?"})+"\n", 30), "none of the first 20 rows is an epraccur row (first: line 1: column 13 (status)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cr := &countingReader{r: strings.NewReader(tc.input)}
			orgs, rejected, err := Parse(cr)
			var ne *NotEpraccurError
			if !errors.As(err, &ne) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %v, want a NotEpraccurError saying %q", err, tc.want)
			}
			if len(orgs)+len(rejected) != 0 {
				t.Errorf("Parse returned %d organisations and %d rejected rows with its diagnosis", len(orgs), len(rejected))
			}
			if len(tc.input) > 1<<20 && cr.n > 1<<20 {
				t.Errorf("Parse read %d bytes of %d before stopping; want it to stop early", cr.n, len(tc.input))
			}
		})
	}
	for _, empty := range []string{"", "\n\r\n\n"} {
		if _, _, err := Parse(strings.NewReader(empty)); !errors.Is(err, ErrEmpty) || !strings.Contains(err.Error(), "the file is empty") {
			t.Errorf("Parse(%q) = %v, want ErrEmpty", empty, err)
		}
	}
	for _, name := range []string{"epraccur-sample.csv", "epraccur-bad-rows.csv"} {
		if orgs, _, err := Parse(bytes.NewReader([]byte(read(name)))); err != nil || len(orgs) == 0 {
			t.Errorf("Parse(%s) = %d organisations, %v; want it read as an epraccur file", name, len(orgs), err)
		}
	}
}
