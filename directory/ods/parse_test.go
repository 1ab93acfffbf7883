package ods

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"nhsrelay/directory"
)

func openFixture(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func byCode(orgs []directory.Organisation) map[string]directory.Organisation {
	m := make(map[string]directory.Organisation, len(orgs))
	for _, o := range orgs {
		m[o.ODS] = o
	}
	return m
}

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func TestParseSample(t *testing.T) {
	t.Parallel()
	orgs, rejected, err := Parse(openFixture(t, "epraccur-sample.csv"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(rejected) != 0 {
		t.Errorf("Parse rejected %v, want none", rejected)
	}
	if len(orgs) != 12 {
		t.Fatalf("Parse = %d organisations, want 12", len(orgs))
	}
	got := byCode(orgs)
	want := map[string]directory.Organisation{
		"A81001": {ODS: "A81001", Name: "RIVERSIDE SURGERY", Status: directory.OrgActive,
			Address:  []string{"THE HEALTH CENTRE", "LAWSON STREET", "STOCKTON-ON-TEES", "CLEVELAND"},
			Postcode: "TS18 1HU", Phone: "01642 672351", Kind: "gp-practice", Source: "ods"},
		"A81003": {ODS: "A81003", Name: "VICTORIA MEDICAL PRACTICE", Status: directory.OrgClosed,
			ClosedOn: date(2024, 3, 31),
			Address:  []string{"THE HEALTH CENTRE", "VICTORIA ROAD", "HARTLEPOOL", "CLEVELAND"},
			Postcode: "TS26 8DB", Phone: "01429 272945", Kind: "gp-practice", Source: "ods"},
		"A81005": {ODS: "A81005", Name: "SPRINGWOOD SURGERY", Status: directory.OrgDormant,
			Address:  []string{"SPRINGWOOD SURGERY", "RECTORY LANE", "GUISBOROUGH"},
			Postcode: "TS14 7DJ", Phone: "01287 619611", Kind: "gp-practice", Source: "ods"},
		// Doubled quotes and a comma inside quotes, in the name and an address line.
		"A81006": {ODS: "A81006", Name: `"DR SMITH & PARTNERS", THE CORNER HOUSE`, Status: directory.OrgActive,
			Address: []string{"1, HIGH STREET", "YARM"}, Postcode: "TS15 9AA", Kind: "gp-practice", Source: "ods"},
		"A81007": {ODS: "A81007", Name: "HARTLEPOOL OUT OF HOURS SERVICE", Status: directory.OrgActive,
			Address:  []string{"ONE LIFE CENTRE", "PARK ROAD", "HARTLEPOOL"},
			Postcode: "TS24 7PW", Phone: "01429 234567", Kind: "public-health-service", Source: "ods"},
		"A81008": {ODS: "A81008", Name: "NEW TOWN PRACTICE (PROPOSED)", Status: directory.OrgProposed,
			Address:  []string{"UNIT 4", "NEW TOWN CENTRE", "INGLEBY BARWICK"},
			Postcode: "TS17 0XX", Kind: "gp-practice", Source: "ods"},
		"B82001": {ODS: "B82001", Name: "ABBEY ROAD SURGERY", Status: directory.OrgClosed,
			ClosedOn: date(2019, 12, 31), Address: []string{"ABBEY ROAD", "KNARESBOROUGH", "NORTH YORKSHIRE"},
			Postcode: "HG5 8HX", Phone: "01423 867433", Kind: "gp-practice", Source: "ods"},
		// Runs of spaces folded, trailing spaces trimmed.
		"B82002": {ODS: "B82002", Name: "ST. JOHN'S MEDICAL CENTRE", Status: directory.OrgActive,
			Address:  []string{"28 ST. JOHN'S ROAD", "HARROGATE"},
			Postcode: "HG1 2BB", Phone: "01423 508000", Kind: "gp-practice", Source: "ods"},
		"Y01234": {ODS: "Y01234", Name: "COMMUNITY PHARMACY HUB", Status: directory.OrgActive,
			Address:  []string{"100 LONDON ROAD", "LONDON"},
			Postcode: "SE1 6LH", Phone: "020 7946 0000", Kind: "other", Source: "ods"},
	}
	for code, w := range want {
		g, ok := got[code]
		if !ok {
			t.Errorf("Parse: %s missing", code)
			continue
		}
		if !orgEqual(g, w) {
			t.Errorf("Parse: %s =\n %+v\nwant\n %+v", code, g, w)
		}
	}
}

func orgEqual(a, b directory.Organisation) bool {
	return a.ODS == b.ODS && a.Name == b.Name && a.Status == b.Status && a.ClosedOn.Equal(b.ClosedOn) &&
		a.Successor == b.Successor && slices.Equal(a.Address, b.Address) && a.Postcode == b.Postcode &&
		a.Phone == b.Phone && a.Kind == b.Kind && a.Source == b.Source
}

func TestParseBadRows(t *testing.T) {
	t.Parallel()
	orgs, rejected, err := Parse(openFixture(t, "epraccur-bad-rows.csv"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	var codes []string
	for _, o := range orgs {
		codes = append(codes, o.ODS)
	}
	if !slices.Equal(codes, []string{"A83001", "A83008"}) {
		t.Errorf("Parse kept %v, want [A83001 A83008]", codes)
	}
	want := []struct {
		line   int
		reason string // a part of the reason
	}{
		{2, "4 columns, want 27"},
		{3, "column 11 (open date): \"1974-04-01\" is not a date in YYYYMMDD form"},
		{4, "column 13 (status): unknown status \"X\""},
		{5, "column 1 (organisation code): empty"},
		{6, "column 2: unexpected 'Y' after closing quote"},
		{7, "column 12 (close date): empty, but status is C (closed)"},
	}
	if len(rejected) != len(want) {
		t.Fatalf("Parse rejected %d rows %v, want %d", len(rejected), rejected, len(want))
	}
	for i, w := range want {
		if rejected[i].Line != w.line || !strings.Contains(rejected[i].Reason, w.reason) {
			t.Errorf("rejected[%d] = %v, want line %d containing %q", i, rejected[i], w.line, w.reason)
		}
	}
}

// row builds a valid 27-column row with edits applied (column number → value).
func row(edits map[int]string) string {
	f := []string{"A81001", "RIVERSIDE SURGERY", "Y63", "QHM", "THE HEALTH CENTRE", "LAWSON STREET",
		"STOCKTON-ON-TEES", "CLEVELAND", "", "TS18 1HU", "19740401", "", "A", "B", "16C", "20130401",
		"", "01642 672351", "", "", "", "0", "", "16C", "", "4", ""}
	for col, v := range edits {
		f[col-1] = v
	}
	return formatRecord(f)
}

func TestParseRows(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("X", maxLineBytes+10)
	tests := []struct {
		name, input string
		orgs        int
		reasons     []string // one per rejected row, a part of each
	}{
		{"blank lines skipped", "\n\r\n" + row(nil) + "\n\n", 1, nil},
		{"CRLF and no final newline", row(nil) + "\r\n" + row(map[int]string{1: "A81002"}), 2, nil},
		{"byte order mark", "\xef\xbb\xbf" + row(nil) + "\n", 1, nil},
		{"lower-case code folded", row(map[int]string{1: "a81001"}), 1, nil},
		{"duplicate code", row(nil) + "\n" + row(nil) + "\n", 1, []string{"already given on line 1"}},
		{"too many columns", row(nil) + `,""`, 0, []string{"28 columns, want 27"}},
		{"bad code", row(map[int]string{1: "A8-001"}), 0, []string{"not an ODS code"}},
		{"empty name", row(map[int]string{2: "  "}), 0, []string{"column 2 (name): empty"}},
		{"not a real date", row(map[int]string{11: "20230230"}), 0, []string{"not a real date"}},
		{"close before open", row(map[int]string{12: "19700101"}), 0, []string{"before the open date"}},
		{"empty status", row(map[int]string{13: ""}), 0, []string{"column 13 (status): empty"}},
		{"bad prescribing setting", row(map[int]string{26: "GP"}), 0, []string{"not a prescribing setting"}},
		{"control character", row(map[int]string{2: "A\x00B"}), 0, []string{"control character"}},
		{"field too long", row(map[int]string{2: strings.Repeat("N", maxFieldBytes+1)}), 0, []string{"longer than 256 bytes"}},
		{"line too long, next line kept", long + "\n" + row(nil) + "\n", 1, []string{"line longer than"}},
		{"bare quote", strings.Replace(row(nil), `"RIVERSIDE SURGERY"`, `RIVER"SIDE`, 1), 0, []string{"column 2: quote inside an unquoted field"}},
		{"quote not closed", `"A81001","RIVERSIDE`, 0, []string{"column 2: quote not closed"}},
		{"unclosed quote does not swallow next line", `"A81009","OPEN` + "\n" + row(nil), 1, []string{"quote not closed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			orgs, rejected, err := Parse(strings.NewReader(tc.input))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(orgs) != tc.orgs {
				t.Errorf("Parse = %d organisations, want %d", len(orgs), tc.orgs)
			}
			if len(rejected) != len(tc.reasons) {
				t.Fatalf("Parse rejected %v, want %d rows", rejected, len(tc.reasons))
			}
			for i, r := range tc.reasons {
				if !strings.Contains(rejected[i].Reason, r) {
					t.Errorf("rejected[%d] = %v, want reason containing %q", i, rejected[i], r)
				}
			}
		})
	}
}

func TestParseFieldValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		edit  map[int]string
		check func(directory.Organisation) bool
	}{
		{"latin-1 name read as ISO 8859-1", map[int]string{2: "MEDDYGFA\xc2R BONT"},
			func(o directory.Organisation) bool { return o.Name == "MEDDYGFAÂR BONT" }},
		{"unknown setting kept", map[int]string{26: "30"},
			func(o directory.Organisation) bool { return o.Kind == "prescribing-setting-30" }},
		{"empty setting", map[int]string{26: ""},
			func(o directory.Organisation) bool { return o.Kind == "other" }},
		{"postcode upper-cased", map[int]string{10: " ts18  1hu "},
			func(o directory.Organisation) bool { return o.Postcode == "TS18 1HU" }},
		{"dormant with close date", map[int]string{13: "D", 12: "20200101"},
			func(o directory.Organisation) bool {
				return o.Status == directory.OrgDormant && o.ClosedOn.Equal(date(2020, 1, 1))
			}},
		{"tabs folded", map[int]string{5: "THE\tHEALTH \u00a0CENTRE"},
			func(o directory.Organisation) bool { return o.Address[0] == "THE HEALTH CENTRE" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			orgs, rejected, err := Parse(strings.NewReader(row(tc.edit)))
			if err != nil || len(rejected) != 0 || len(orgs) != 1 {
				t.Fatalf("Parse = %v, %v, %v; want one organisation", orgs, rejected, err)
			}
			if !tc.check(orgs[0]) {
				t.Errorf("Parse = %+v, check failed", orgs[0])
			}
		})
	}
}

func TestParseRecord(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []string
		err  string
	}{
		{``, []string{""}, ""},
		{`a,b`, []string{"a", "b"}, ""},
		{`"a","b"`, []string{"a", "b"}, ""},
		{`"a,b",""`, []string{"a,b", ""}, ""},
		{`"say ""hi""",x`, []string{`say "hi"`, "x"}, ""},
		{`"",,""`, []string{"", "", ""}, ""},
		{`a,`, []string{"a", ""}, ""},
		{`"a"b`, nil, "column 1: unexpected 'b' after closing quote"},
		{`a"b`, nil, "column 1: quote inside an unquoted field"},
		{`x,"abc`, nil, "column 2: quote not closed"},
		{`"a""`, nil, "column 1: quote not closed"},
	}
	for _, tc := range tests {
		got, err := parseRecord(tc.in, nil)
		if tc.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("parseRecord(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("parseRecord(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParseDirectoryChecks(t *testing.T) {
	t.Parallel()
	_, rejected, err := Parse(strings.NewReader(row(map[int]string{10: "NOT A POSTCODE", 18: "call us"})))
	if err != nil || len(rejected) != 1 {
		t.Fatalf("Parse = %v, %v; want one rejected row", rejected, err)
	}
	for _, want := range []string{"column 10 (postcode): \"NOT A POSTCODE\" is not a UK postcode", "column 18 (contact telephone)"} {
		if !strings.Contains(rejected[0].Reason, want) {
			t.Errorf("reason = %q, want it to contain %q", rejected[0].Reason, want)
		}
	}
}
