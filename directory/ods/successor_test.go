package ods

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

const succSample = `"A81003","A81001","Merger","20240401","1"
"B82001","B82002","Merger","20200101","1"
"Z99999","A81001","Merger","20200101","1"
"A81003","A81002","Split","20240401","0"
"A81005"
"A81007","A81007","Merger","20240401","1"
"A81008","B82002","Merger","2024-04-01","1"
`

func TestParseSuccessors(t *testing.T) {
	t.Parallel()
	succ, rejected, err := ParseSuccessors(strings.NewReader(succSample))
	if err != nil {
		t.Fatal(err)
	}
	want := []Succession{
		{Line: 1, Predecessor: "A81003", Successor: "A81001", Reason: "Merger", Effective: time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC)},
		{Line: 2, Predecessor: "B82001", Successor: "B82002", Reason: "Merger", Effective: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Line: 3, Predecessor: "Z99999", Successor: "A81001", Reason: "Merger", Effective: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	if !slices.Equal(succ, want) {
		t.Errorf("ParseSuccessors =\n%+v\nwant\n%+v", succ, want)
	}
	reasons := []string{"already has a successor on line 1", "1 columns", "cannot succeed itself", "YYYYMMDD"}
	if len(rejected) != len(reasons) {
		t.Fatalf("rejected = %v, want %d", rejected, len(reasons))
	}
	for i, r := range reasons {
		if rejected[i].Line != i+4 || !strings.Contains(rejected[i].Reason, r) {
			t.Errorf("rejected[%d] = %v, want line %d with %q", i, rejected[i], i+4, r)
		}
	}
}

func TestImportSuccessors(t *testing.T) {
	t.Parallel()
	d := directorytest.New(t)
	if _, err := Import(t.Context(), d, bytes.NewReader(readFixture(t, "epraccur-sample.csv")), true); err != nil {
		t.Fatal(err)
	}
	if _, err := ImportSuccessors(t.Context(), d, strings.NewReader(succSample), true); err == nil {
		t.Fatal("strict successor import with bad rows: no error")
	}
	if o, _ := d.Organisation(t.Context(), "A81003"); o.Successor != "" {
		t.Fatalf("a refused strict import set a successor: %+v", o)
	}
	rep, err := ImportSuccessors(t.Context(), d, strings.NewReader(succSample), false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Updated, []string{"A81003", "B82001"}) || !slices.Equal(rep.Unknown, []string{"Z99999"}) ||
		len(rep.Rejected) != 4 || !rep.Written {
		t.Errorf("ImportSuccessors = %s %+v", rep.Summary(), rep)
	}
	if o, _ := d.Organisation(t.Context(), "A81003"); o.Successor != "A81001" || o.Status != directory.OrgClosed {
		t.Errorf("A81003 = %+v, want closed with successor A81001", o)
	}
	again, err := ImportSuccessors(t.Context(), d, strings.NewReader(succSample), false)
	if err != nil || len(again.Updated) != 0 || len(again.Unchanged) != 2 {
		t.Errorf("second ImportSuccessors = %s, %v; want 2 unchanged", again.Summary(), err)
	}
	// A later epraccur import (which has no successor column) keeps it.
	if _, err := Import(t.Context(), d, bytes.NewReader(readFixture(t, "epraccur-sample.csv")), true); err != nil {
		t.Fatal(err)
	}
	if o, _ := d.Organisation(t.Context(), "A81003"); o.Successor != "A81001" {
		t.Errorf("re-import of epraccur dropped the successor: %+v", o)
	}
}

// FuzzParseSuccessors: any input gives valid successions with real line
// numbers, or rejections; never a panic.
func FuzzParseSuccessors(f *testing.F) {
	for _, s := range append(strings.Split(succSample, "\n"), succSample, `"A","B"`, `"A81001",""`, "\x00,\x00") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		succ, rejected, err := ParseSuccessors(strings.NewReader(s))
		if err != nil {
			t.Fatalf("ParseSuccessors: %v", err)
		}
		n := strings.Count(s, "\n") + 1
		for _, x := range succ {
			if x.Line < 1 || x.Line > n || checkODS(x.Predecessor) != nil || checkODS(x.Successor) != nil || x.Predecessor == x.Successor {
				t.Fatalf("bad succession %+v", x)
			}
		}
		for _, r := range rejected {
			if r.Line < 1 || r.Line > n || r.Reason == "" {
				t.Fatalf("bad rejection %+v", r)
			}
		}
	})
}
