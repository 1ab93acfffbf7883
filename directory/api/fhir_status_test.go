package api

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

// FHIR Endpoint.status says what RCPT would answer, not the stored status:
// a verified endpoint whose verification has run out (before the daily
// expiry check has recorded it) or whose organisation has closed (imported
// by another node) is "suspended", and a status search agrees.
func TestFHIRStatusFollowsRCPT(t *testing.T) {
	t.Parallel()
	now := time.Now()
	mx := directory.NextHop{Kind: directory.HopMX}
	fresh := directorytest.Verified("gp@a81001.nhs.example", mx)
	lapsed := directorytest.Verified("lapsed@a81001.nhs.example", mx)
	lapsed.Verification.At, lapsed.Verification.Expires = now.AddDate(-1, 0, -1), now.Add(-time.Hour)
	closed := directorytest.Verified("gp@b82002.nhs.example", mx)
	closed.ODS = "B82002"
	pending := directorytest.Pending("new@a81001.nhs.example")
	redirected := directorytest.Pending("old@a81001.nhs.example")
	redirected.Redirect = "gp@a81001.nhs.example"

	st := directorytest.NewStore(t)
	directorytest.Seed(t, st, fresh, lapsed, closed, pending, redirected)
	// Another node imported B82002's closure; this node has not yet
	// suspended its endpoints.
	if err := st.Apply(t.Context(), directory.Batch{Organisations: []directory.Organisation{{ODS: "B82002",
		Name: "Closed Practice", Status: directory.OrgClosed, ClosedOn: now.AddDate(0, 0, -1)}}}); err != nil {
		t.Fatal(err)
	}
	d, err := directory.Open(t.Context(), directory.Config{Store: st, HashCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(newServer(d, slog.New(slog.NewTextHandler(t.Output(), nil)), maxJSONBody, maxCSVBody).mux)
	t.Cleanup(srv.Close)
	f := &fixture{d: d, srv: srv}

	for id, want := range map[string]string{
		"ep-test-1": "active",    // verified and in date
		"ep-test-2": "suspended", // verification ran out an hour ago
		"ep-test-3": "suspended", // organisation closed
		"ep-test-4": "off",       // pending
		"ep-test-5": "active",    // pending, but redirected to a verified endpoint: RCPT accepts
	} {
		var e FHIREndpoint
		f.do(t, "GET", "/fhir/Endpoint/"+id, nil).wantFHIR(t, http.StatusOK, &e)
		ep, _ := d.Endpoint(t.Context(), id)
		_, rcptErr := d.CheckRecipient(t.Context(), ep.Address)
		if e.Status != want || (want == "active") != (rcptErr == nil) {
			t.Errorf("Endpoint/%s status = %q, want %q (RCPT error: %v)", id, e.Status, want, rcptErr)
		}
	}
	for query, want := range map[string]string{
		"status=active":    "ep-test-1 ep-test-5",
		"status=suspended": "ep-test-2 ep-test-3",
		"status=off":       "ep-test-4",
	} {
		var b struct {
			Entry []struct{ Resource FHIREndpoint }
		}
		f.do(t, "GET", "/fhir/Endpoint?"+query, nil).wantFHIR(t, http.StatusOK, &b)
		var ids []string
		for _, e := range b.Entry {
			ids = append(ids, e.Resource.ID)
		}
		slices.Sort(ids)
		if got := strings.Join(ids, " "); got != want {
			t.Errorf("Endpoint?%s = %s, want %s", query, got, want)
		}
	}
}
