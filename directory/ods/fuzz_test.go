package ods

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

// fixtureLines returns every line of the ODS fixtures, for fuzz seeds.
func fixtureLines(f *testing.F) []string {
	f.Helper()
	var lines []string
	for _, name := range []string{"epraccur-sample.csv", "epraccur-bad-rows.csv"} {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		lines = append(lines, strings.Split(strings.TrimSpace(string(data)), "\n")...)
	}
	return lines
}

var hostileRecords = []string{
	``, `"`, `""`, `"""`, `,`, `,,,`, `"a`, `a"`, `"a""`, `"a"b`, `"a",`, `"a,b","c""d"`,
	"\x00", "\"\x00\"", "\xff\xfe", "\"\r\"", `"a"",`, strings.Repeat(`"",`, 40),
}

// FuzzParseRecord: an accepted line must survive formatRecord and parse to
// the same fields; anything else must fail cleanly, never panic.
func FuzzParseRecord(f *testing.F) {
	for _, s := range append(fixtureLines(f), hostileRecords...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fields, err := parseRecord(s, nil)
		if err != nil {
			return
		}
		if len(fields) == 0 {
			t.Fatalf("parseRecord(%q) = no fields and no error", s)
		}
		again, err := parseRecord(formatRecord(fields), nil)
		if err != nil || !slices.Equal(again, fields) {
			t.Fatalf("%q → %q → %q → %q, %v", s, fields, formatRecord(fields), again, err)
		}
	})
}

// FuzzParse: any input yields good organisations and rejected rows with real
// line numbers, and never more results than lines.
func FuzzParse(f *testing.F) {
	lines := fixtureLines(f)
	f.Add(strings.Join(lines, "\n"))
	f.Add(strings.Join(lines, "\r\n") + "\r\n")
	for _, s := range append(lines, hostileRecords...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		orgs, rejected, err := Parse(strings.NewReader(s))
		var ne *NotEpraccurError
		if errors.Is(err, ErrEmpty) || errors.As(err, &ne) {
			if len(orgs)+len(rejected) > 0 || strings.TrimSpace(err.Error()) == "" {
				t.Fatalf("Parse = %d orgs, %d rejected with %v; a diagnosis returns nothing else", len(orgs), len(rejected), err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Parse: %v (only read errors, an empty file and a diagnosis are errors)", err)
		}
		n := bytes.Count([]byte(s), []byte{'\n'}) + 1
		if len(orgs)+len(rejected) > n {
			t.Fatalf("Parse = %d orgs + %d rejected from %d lines", len(orgs), len(rejected), n)
		}
		last := 0
		for _, r := range rejected {
			if r.Line <= last || r.Line > n || r.Reason == "" {
				t.Fatalf("rejected %+v: line out of order or range 1..%d, or no reason", r, n)
			}
			last = r.Line
		}
		seen := map[string]bool{}
		for _, o := range orgs {
			if checkODS(o.ODS) != nil || o.Name == "" || o.Status == "" || seen[o.ODS] {
				t.Fatalf("Parse kept a bad or duplicate organisation %+v", o)
			}
			seen[o.ODS] = true
		}
	})
}
