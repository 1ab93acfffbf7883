package api

import (
	"net/http"
	"strings"
	"testing"

	"nhsrelay/directory"
)

func TestOrganisations(t *testing.T) {
	t.Parallel()
	f := start(t, options{}, verified("gp@a81001.nhs.example"))
	const base = "/v1/directory/organisations"

	var o directory.Organisation
	r := f.do(t, "POST", base, map[string]any{"ods": "b82002", "name": "St John's Medical Centre",
		"status": "active", "postcode": "hg1 2bb", "address": []string{"28 St John's Road", "Harrogate"},
		"phone": "01423 508000", "kind": "gp-practice"}).want(t, http.StatusCreated, &o)
	if o.ODS != "B82002" || o.Source != directory.SourceAdmin || o.Postcode != "HG1 2BB" {
		t.Errorf("POST = %+v, want B82002, source admin, postcode normalised", o)
	}
	if loc := r.header.Get("Location"); loc != base+"/B82002" {
		t.Errorf("Location = %q", loc)
	}

	f.do(t, "GET", base+"/b82002", nil).want(t, http.StatusOK, &o)
	if o.Name != "St John's Medical Centre" {
		t.Errorf("GET = %+v", o)
	}

	var list organisationList
	f.do(t, "GET", base, nil).want(t, http.StatusOK, &list)
	if len(list.Organisations) != 2 {
		t.Errorf("GET list = %d organisations, want 2 (seeded and added)", len(list.Organisations))
	}
	f.do(t, "GET", base+"?name=st+john", nil).want(t, http.StatusOK, &list)
	if len(list.Organisations) != 1 || list.Organisations[0].ODS != "B82002" {
		t.Errorf("GET ?name=st john = %+v, want B82002", list.Organisations)
	}

	// PUT replaces: a successor and a closure.
	o = directory.Organisation{}
	f.do(t, "PUT", base+"/B82002", map[string]any{"name": "St John's Medical Centre", "status": "closed",
		"closed_on": "2025-03-31T00:00:00Z", "successor": "A81001"}).want(t, http.StatusOK, &o)
	if o.Status != directory.OrgClosed || o.Successor != "A81001" || o.Postcode != "" {
		t.Errorf("PUT = %+v, want closed with successor and the postcode gone", o)
	}
	// PUT creates.
	o = directory.Organisation{}
	r = f.do(t, "PUT", base+"/C83001", map[string]any{"ods": "c83001", "name": "New Practice"}).want(t, http.StatusCreated, &o)
	if o.ODS != "C83001" || o.Status != directory.OrgActive || r.header.Get("Location") == "" {
		t.Errorf("PUT new = %+v", o)
	}
	// Closing the seeded organisation suspends its endpoint, in the same write.
	f.do(t, "PUT", base+"/A81001", map[string]any{"name": "Test Practice", "status": "closed",
		"closed_on": "2025-06-30T00:00:00Z"}).want(t, http.StatusOK, nil)
	var ep directory.Endpoint
	f.do(t, "GET", "/v1/directory/endpoints/ep-test-1", nil).want(t, http.StatusOK, &ep)
	if ep.Status != directory.StatusSuspended || !strings.Contains(ep.StatusReason, "2025-06-30") {
		t.Errorf("endpoint after closure = %s %q, want suspended with the date", ep.Status, ep.StatusReason)
	}
}

func TestOrganisationErrors(t *testing.T) {
	t.Parallel()
	f := start(t, options{maxJSON: 512}, verified("gp@a81001.nhs.example"))
	const base = "/v1/directory/organisations"
	good := `{"ods": "B82001", "name": "Abbey Road Surgery"}`
	tests := []struct {
		name, method, path string
		body               any
		ctype              string
		status             int
		field              string
	}{
		{"exists", "POST", base, `{"ods": "A81001", "name": "Again"}`, "", 409, ""},
		{"no ods", "POST", base, `{"name": "Nameless"}`, "", 400, "ods"},
		{"no name", "POST", base, `{"ods": "B82001"}`, "", 400, "name"},
		{"bad ods", "POST", base, `{"ods": "B8-2001", "name": "X"}`, "", 400, "ods"},
		{"bad postcode", "POST", base, `{"ods": "B82001", "name": "X", "postcode": "NOWHERE"}`, "", 400, "postcode"},
		{"bad status", "POST", base, `{"ods": "B82001", "name": "X", "status": "open"}`, "", 400, "status"},
		{"unknown field", "POST", base, `{"ods": "B82001", "name": "X", "colour": "blue"}`, "", 400, "colour"},
		{"read-only source", "POST", base, `{"ods": "B82001", "name": "X", "source": "ods"}`, "", 400, "source"},
		{"wrong type", "POST", base, `{"ods": "B82001", "name": 7}`, "", 400, "name"},
		{"not JSON", "POST", base, `{"ods": `, "", 400, ""},
		{"syntax", "POST", base, `{"ods" "x"}`, "", 400, ""},
		{"empty body", "POST", base, ``, "", 400, ""},
		{"array", "POST", base, `[]`, "", 400, ""},
		{"trailing data", "POST", base, good + `{}`, "", 400, ""},
		{"content type", "POST", base, good, "text/plain", 415, ""},
		{"too large", "POST", base, `{"ods": "B82001", "name": "` + strings.Repeat("x", 600) + `"}`, "", 413, ""},
		{"get missing", "GET", base + "/Z99999", nil, "", 404, ""},
		{"put mismatch", "PUT", base + "/B82001", `{"ods": "A81001", "name": "X"}`, "", 400, "ods"},
		{"put invalid", "PUT", base + "/B82001", `{"name": ""}`, "", 400, "name"},
		{"list unknown parameter", "GET", base + "?nmae=x", nil, "", 400, "nmae"},
		{"list repeated parameter", "GET", base + "?name=a&name=b", nil, "", 400, "name"},
		{"method", "DELETE", base + "/A81001", nil, "", 405, ""},
		{"no such resource", "GET", "/v1/directory/nothing", nil, "", 404, ""},
	}
	t.Run("requests", func(t *testing.T) { // returns once the parallel subtests end
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				var hdr []string
				if tc.ctype != "" {
					hdr = []string{"Content-Type", tc.ctype}
				}
				r := f.do(t, tc.method, tc.path, tc.body, hdr...)
				r.wantError(t, tc.status, tc.field)
			})
		}
	})
	// Nothing above was written.
	if _, err := f.d.Organisation(t.Context(), "B82001"); err == nil {
		t.Error("a refused request wrote organisation B82001")
	}
	if o, _ := f.d.Organisation(t.Context(), "A81001"); o.Name != "Test Practice A81001" {
		t.Errorf("a refused request changed A81001: %+v", o)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	f := start(t, options{})
	r := f.do(t, "POST", "/v1/directory/check", nil)
	r.wantError(t, http.StatusMethodNotAllowed, "")
	if allow := r.header.Get("Allow"); allow != "GET" {
		t.Errorf("Allow = %q, want GET", allow)
	}
}
