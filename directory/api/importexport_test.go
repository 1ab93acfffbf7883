package api

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
	"nhsrelay/directory/ods"
)

func fixtureCSV(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile("../ods/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestImportODS(t *testing.T) {
	t.Parallel()
	f := start(t, options{})
	var rep ods.Report
	f.do(t, "POST", "/v1/directory/import-ods", fixtureCSV(t, "epraccur-sample.csv")).want(t, http.StatusOK, &rep)
	if rep.Rows != 12 || len(rep.Added) != 12 || len(rep.Unchanged) != 0 || !rep.Written {
		t.Errorf("import = %s", rep.Summary())
	}
	rep = ods.Report{}
	f.do(t, "POST", "/v1/directory/import-ods?strict=1", fixtureCSV(t, "epraccur-sample.csv")).want(t, http.StatusOK, &rep)
	if len(rep.Unchanged) != 12 {
		t.Errorf("re-import = %s, want 12 unchanged", rep.Summary())
	}

	rep = ods.Report{}
	f.do(t, "POST", "/v1/directory/import-ods", fixtureCSV(t, "epraccur-bad-rows.csv")).want(t, http.StatusOK, &rep)
	if !slices.Equal(rep.Added, []string{"A83001", "A83008"}) || len(rep.Rejected) != 6 || rep.Rejected[0].Line != 2 {
		t.Errorf("lenient import of bad rows = %s %+v", rep.Summary(), rep.Rejected)
	}
}

func TestImportODSErrors(t *testing.T) {
	t.Parallel()
	f := start(t, options{maxCSV: 1000})
	bad := fixtureCSV(t, "epraccur-bad-rows.csv")[:900]
	e := f.do(t, "POST", "/v1/directory/import-ods?strict=yes", bad).wantError(t, http.StatusUnprocessableEntity, "")
	if e.Report == nil || len(e.Report.Rejected) == 0 || e.Report.Written || !strings.Contains(e.Error, "line 2") {
		t.Errorf("strict import error = %+v, want the report and the first bad line named", e)
	}
	if _, err := f.d.Organisation(t.Context(), "A83001"); err == nil {
		t.Error("a refused strict import wrote A83001, a good row")
	}
	f.do(t, "POST", "/v1/directory/import-ods?strict=maybe", bad).wantError(t, http.StatusBadRequest, "strict")
	f.do(t, "POST", "/v1/directory/import-ods?dry=1", bad).wantError(t, http.StatusBadRequest, "dry")
	f.do(t, "POST", "/v1/directory/import-ods", fixtureCSV(t, "epraccur-sample.csv")).wantError(t, http.StatusRequestEntityTooLarge, "")
	if orgs := f.d.Organisations(t.Context(), ""); len(orgs) != 0 {
		t.Errorf("after refused imports the directory holds %d organisations, want none", len(orgs))
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	f := start(t, options{}, verified("gp@a81001.nhs.example"),
		directorytest.Suspended("closed@a81001.nhs.example", "practice closed on 2024-03-31"))
	tests := []struct {
		addr   string
		ok     bool
		reason string
	}{
		{"gp@a81001.nhs.example", true, "without S/MIME"},
		{"closed@a81001.nhs.example", false, "practice closed on 2024-03-31"},
		{"nobody@nowhere.nhs.example", false, "no such NHS endpoint"},
		{"not an address", false, "not a valid address"},
	}
	for _, tc := range tests {
		var res directory.CheckResult
		f.do(t, "GET", "/v1/directory/check?address="+strings.ReplaceAll(tc.addr, " ", "+"), nil).want(t, http.StatusOK, &res)
		if res.OK != tc.ok || !strings.Contains(strings.Join(res.Reasons, "; "), tc.reason) {
			t.Errorf("check %s = ok %v %q, want ok %v and a reason with %q", tc.addr, res.OK, res.Reasons, tc.ok, tc.reason)
		}
	}
	var res directory.CheckResult
	f.do(t, "GET", "/v1/directory/check?address=gp@a81001.nhs.example", nil).want(t, http.StatusOK, &res)
	if res.Path == "" || res.Endpoint.ID != "ep-test-1" {
		t.Errorf("check = %+v, want the delivery path and the endpoint", res)
	}
	f.do(t, "GET", "/v1/directory/check", nil).wantError(t, http.StatusBadRequest, "address")
	f.do(t, "GET", "/v1/directory/check?addr=x", nil).wantError(t, http.StatusBadRequest, "addr")
}

func TestExport(t *testing.T) {
	t.Parallel()
	e := verified("gp@a81001.nhs.example")
	e.FaxNumbers = []string{"+441632960001"}
	e.Contacts = []string{"=HYPERLINK(\"http://evil.example\")"}
	f := start(t, options{}, e, directorytest.Pending("new@a81001.nhs.example"))

	var exp Export
	f.do(t, "GET", "/v1/directory/export", nil).want(t, http.StatusOK, &exp)
	if len(exp.Endpoints) != 2 || len(exp.Organisations) != 1 {
		t.Errorf("JSON export = %d endpoints, %d organisations; want 2 and 1", len(exp.Endpoints), len(exp.Organisations))
	}
	r := f.do(t, "GET", "/v1/directory/export?format=json", nil).want(t, http.StatusOK, nil)
	if err := json.Unmarshal(r.body, &exp); err != nil {
		t.Fatal(err)
	}

	r = f.do(t, "GET", "/v1/directory/export?format=csv", nil).want(t, http.StatusOK, nil)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		t.Errorf("Content-Type = %q", ct)
	}
	rows, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
	if err != nil {
		t.Fatalf("CSV export does not parse: %v", err)
	}
	if len(rows) != 3 || !slices.Equal(rows[0], EndpointCSVHeader) {
		t.Fatalf("CSV export = %q", rows)
	}
	col := func(name string) int { return slices.Index(EndpointCSVHeader, name) }
	gp := rows[1]
	if gp[col("address")] != "gp@a81001.nhs.example" || gp[col("organisation")] != "Test Practice A81001" ||
		gp[col("fax_numbers")] != "+441632960001" || gp[col("status")] != "verified" {
		t.Errorf("CSV row = %q", gp)
	}
	if c := gp[col("contacts")]; !strings.HasPrefix(c, "'=") {
		t.Errorf("contacts cell %q: a formula must be neutralised with a leading quote", c)
	}

	r = f.do(t, "GET", "/v1/directory/export?format=csv&what=organisations", nil).want(t, http.StatusOK, nil)
	rows, err = csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
	if err != nil || len(rows) != 2 || !slices.Equal(rows[0], OrganisationCSVHeader) || rows[1][0] != "A81001" {
		t.Errorf("organisations CSV = %q, %v", rows, err)
	}

	f.do(t, "GET", "/v1/directory/export?format=xml", nil).wantError(t, http.StatusBadRequest, "format")
	f.do(t, "GET", "/v1/directory/export?what=passwords", nil).wantError(t, http.StatusBadRequest, "what")
}

func TestCells(t *testing.T) {
	t.Parallel()
	in := []string{"=1+1", "@SUM(A1)", "+441632960001", "-5", "+", "-x", "plain", "", "\tx"}
	want := []string{"'=1+1", "'@SUM(A1)", "+441632960001", "-5", "'+", "'-x", "plain", "", "'\tx"}
	if got := cells(slices.Clone(in)...); !slices.Equal(got, want) {
		t.Errorf("cells(%q) = %q, want %q", in, got, want)
	}
}

func TestImportSuccessors(t *testing.T) {
	t.Parallel()
	f := start(t, options{})
	f.do(t, "POST", "/v1/directory/import-ods", fixtureCSV(t, "epraccur-sample.csv")).want(t, http.StatusOK, nil)
	succ := []byte(`"A81003","A81001","Merger","20240401","1"` + "\n" + `"A81005","A81005","","",""` + "\n")

	e := f.do(t, "POST", "/v1/directory/import-ods-successors?strict=1", succ).wantError(t, http.StatusUnprocessableEntity, "")
	if e.Successors == nil || len(e.Successors.Rejected) != 1 || e.Successors.Written {
		t.Errorf("strict successor import error = %+v, want its report", e)
	}
	var rep ods.SuccessorReport
	f.do(t, "POST", "/v1/directory/import-ods-successors", succ).want(t, http.StatusOK, &rep)
	if !slices.Equal(rep.Updated, []string{"A81003"}) || len(rep.Rejected) != 1 {
		t.Errorf("successor import = %s", rep.Summary())
	}
	if o, _ := f.d.Organisation(t.Context(), "A81003"); o.Successor != "A81001" {
		t.Errorf("A81003 successor = %q, want A81001", o.Successor)
	}
	f.do(t, "POST", "/v1/directory/import-ods-successors?strict=2", succ).wantError(t, http.StatusBadRequest, "strict")
}
