package directory_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

func odsExtract() []directory.Organisation {
	return []directory.Organisation{
		{ODS: "A81001", Name: "THE DENSHAM SURGERY", Status: directory.OrgActive, Address: []string{"THE HEALTH CENTRE", "LAWSON STREET", "STOCKTON-ON-TEES"}, Postcode: "TS18 1HU", Phone: "01642 672351", Kind: "gp-practice"},
		{ODS: "A81002", Name: `QUEENS PARK MEDICAL CENTRE, "NORTH"`, Status: directory.OrgActive, Postcode: "TS18 2AW", Kind: "gp-practice"},
		{ODS: "A81003", Name: "VICTORIA MEDICAL PRACTICE", Status: directory.OrgProposed, Kind: "gp-practice"},
	}
}

func TestImportOrganisations(t *testing.T) {
	t.Parallel()
	a2 := directorytest.Verified("gp.a81002@nhs.example", mx)
	a2.ODS = "A81002"
	a2pending := directorytest.Pending("new.a81002@nhs.example")
	a2pending.ODS = "A81002"
	a2retired := directory.Endpoint{Address: "old.a81002@nhs.example", ODS: "A81002", Status: directory.StatusRetired, StatusReason: "replaced"}
	fx := newFixture(t, a2, a2pending, a2retired)
	ctx := admin(t)
	// Seed made A81002 as an admin entry with a successor the ODS file lacks.
	mustOrg(t, fx.d, directory.Organisation{ODS: "A81002", Name: "Queens Park", Status: directory.OrgActive, Successor: "A81001"})

	res, err := fx.d.ImportOrganisations(ctx, odsExtract())
	if err != nil {
		t.Fatalf("ImportOrganisations: %v", err)
	}
	want := directory.ImportResult{Added: []string{"A81001", "A81003"}, Updated: []string{"A81002"}}
	if fmt.Sprint(res) != fmt.Sprint(want) {
		t.Fatalf("first import = %+v, want %+v", res, want)
	}
	o, _ := fx.d.Organisation(ctx, "A81002")
	if o.Source != directory.SourceODS || o.Successor != "A81001" || !o.ImportedAt.Equal(t0) || o.Name != `QUEENS PARK MEDICAL CENTRE, "NORTH"` {
		t.Fatalf("A81002 after import = %+v; want ODS data, admin successor kept, imported at t0", o)
	}

	// The same file again changes nothing: not even the import time.
	fx.clock.Advance(24 * time.Hour)
	res, err = fx.d.ImportOrganisations(ctx, odsExtract())
	if err != nil {
		t.Fatalf("re-import: %v", err)
	}
	want = directory.ImportResult{Unchanged: []string{"A81001", "A81002", "A81003"}}
	if fmt.Sprint(res) != fmt.Sprint(want) {
		t.Fatalf("re-import = %+v, want all unchanged", res)
	}
	rev, _ := fx.store.Revision(ctx)

	// A81002 closes: its live endpoints are suspended with the reason in words.
	closing := odsExtract()
	closing[1].Status, closing[1].ClosedOn = directory.OrgClosed, time.Date(2024, 3, 31, 0, 0, 0, 0, time.UTC)
	closing[2].Status = directory.OrgDormant
	res, err = fx.d.ImportOrganisations(ctx, closing)
	if err != nil {
		t.Fatalf("closing import: %v", err)
	}
	want = directory.ImportResult{Closed: []string{"A81002", "A81003"}, Unchanged: []string{"A81001"},
		Suspended: []string{"gp.a81002@nhs.example", "new.a81002@nhs.example"}}
	if fmt.Sprint(res) != fmt.Sprint(want) {
		t.Fatalf("closing import = %+v, want %+v", res, want)
	}
	if rev2, _ := fx.store.Revision(ctx); rev2 != rev+1 {
		t.Errorf("closing import took %d writes, want 1 (atomic)", rev2-rev)
	}
	for _, addr := range []string{"gp.a81002@nhs.example", "new.a81002@nhs.example"} {
		e := mustLookup(t, fx.d, addr)
		if e.Status != directory.StatusSuspended || e.StatusReason != "practice closed on 2024-03-31" {
			t.Errorf("%s after closure: %s %q, want suspended, practice closed on 2024-03-31", addr, e.Status, e.StatusReason)
		}
		hasEvent(t, fx.audit, "endpoint.suspended", addr, "ok")
	}
	if e := mustLookup(t, fx.d, "old.a81002@nhs.example"); e.Status != directory.StatusRetired {
		t.Errorf("retired endpoint became %s", e.Status)
	}
	// The refusal names the successor only once it has a verified endpoint.
	var nv *directory.NotVerifiedError
	if _, err := fx.d.CheckRecipient(ctx, "gp.a81002@nhs.example"); !errors.As(err, &nv) || nv.Reason != "suspended: practice closed on 2024-03-31" || nv.Successor != "" {
		t.Fatalf("CheckRecipient(closed) = %#v", err)
	}
	succ := mustAdd(t, fx.d, directory.Endpoint{Address: "gp.a81001@nhs.example", ODS: "A81001"})
	if err := fx.d.Attest(ctx, succ.ID, "phoned"); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.d.CheckRecipient(ctx, "gp.a81002@nhs.example"); !errors.As(err, &nv) || nv.Successor != "A81001 gp.a81001@nhs.example" {
		t.Fatalf("CheckRecipient(closed, successor verified) = %v, want successor A81001 gp.a81001@nhs.example", err)
	}
	hasEvent(t, fx.audit, "organisation.closed", "", "ok")

	// Importing the closing file again is idempotent too.
	res, err = fx.d.ImportOrganisations(ctx, closing)
	if err != nil || len(res.Unchanged) != 3 || len(res.Suspended) != 0 {
		t.Fatalf("closing re-import = %+v, %v; want all unchanged, nothing suspended", res, err)
	}
	// A dormant practice says so.
	if o, _ := fx.d.Organisation(ctx, "A81003"); o.Status != directory.OrgDormant {
		t.Errorf("A81003 status %s, want dormant", o.Status)
	}
}

func TestImportIsAtomic(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	orgs := odsExtract()
	orgs = append(orgs, directory.Organisation{ODS: "A81004", Name: "", Postcode: "nope"}, orgs[0])
	_, err := fx.d.ImportOrganisations(admin(t), orgs)
	f := fields(t, err)
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range f {
			if !yield(k) {
				return
			}
		}
	})
	if strings.Join(keys, " ") != "A81001.ods A81004.name A81004.postcode" {
		t.Fatalf("import fields = %v, want A81001.ods (duplicate), A81004.name, A81004.postcode", f)
	}
	if got := fx.d.Organisations(t.Context(), ""); len(got) != 0 {
		t.Fatalf("failed import wrote %d organisations, want none", len(got))
	}
	hasEvent(t, fx.audit, "directory.import", "", "refused")
}

func TestImportLarge(t *testing.T) {
	t.Parallel()
	// The national file has ~12,000 practices; import and re-import them.
	fx := newFixture(t)
	var orgs []directory.Organisation
	for i := range 12000 {
		orgs = append(orgs, directory.Organisation{ODS: fmt.Sprintf("P%05d", i), Name: fmt.Sprintf("PRACTICE %d", i), Postcode: "LS1 4AP", Kind: "gp-practice"})
	}
	res, err := fx.d.ImportOrganisations(admin(t), orgs)
	if err != nil || len(res.Added) != 12000 {
		t.Fatalf("import = %d added, %v", len(res.Added), err)
	}
	res, err = fx.d.ImportOrganisations(admin(t), orgs)
	if err != nil || len(res.Unchanged) != 12000 {
		t.Fatalf("re-import = %d unchanged, %v", len(res.Unchanged), err)
	}
}

// TestImportReopensPractice: a practice an import closed and a later
// import reopens gets back exactly the endpoints its closure suspended, in
// the status they had; an endpoint an administrator suspended stays
// suspended; the successor link goes, and RCPT accepts again.
func TestImportReopensPractice(t *testing.T) {
	t.Parallel()
	verified := directorytest.Verified("gp.a81002@nhs.example", mx)
	verified.ODS = "A81002"
	pending := directorytest.Pending("new.a81002@nhs.example")
	pending.ODS = "A81002"
	byAdmin := directorytest.Verified("lab.a81002@nhs.example", mx)
	byAdmin.ODS = "A81002"
	fx := newFixture(t, verified, pending, byAdmin)
	ctx := admin(t)
	if err := fx.d.Suspend(ctx, mustLookup(t, fx.d, "lab.a81002@nhs.example").ID, "lab system replaced"); err != nil {
		t.Fatal(err)
	}
	extract := odsExtract()
	if _, err := fx.d.ImportOrganisations(ctx, extract); err != nil {
		t.Fatal(err)
	}
	closed := slices.Clone(extract)
	closed[1].Status, closed[1].ClosedOn, closed[1].Successor = directory.OrgClosed, t0.AddDate(0, -1, 0), "A81001"
	res, err := fx.d.ImportOrganisations(ctx, closed)
	if err != nil || !slices.Equal(res.Closed, []string{"A81002"}) || len(res.Suspended) != 2 {
		t.Fatalf("closing import = %+v, %v; want A81002 closed, two endpoints suspended", res, err)
	}
	var nv *directory.NotVerifiedError
	if _, err := fx.d.CheckRecipient(ctx, "gp.a81002@nhs.example"); !errors.As(err, &nv) || !strings.Contains(nv.Reason, "practice closed") {
		t.Fatalf("RCPT while closed = %v, want refused as closed", err)
	}
	if e := mustLookup(t, fx.d, "gp.a81002@nhs.example"); e.SuspendedBy != directory.SuspendedByClosure || e.SuspendedFrom != directory.StatusVerified {
		t.Errorf("closure suspension recorded as %q from %q", e.SuspendedBy, e.SuspendedFrom)
	}

	res, err = fx.d.ImportOrganisations(ctx, extract) // A81002 active again
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Reopened, []string{"A81002"}) ||
		!slices.Equal(res.Restored, []string{"gp.a81002@nhs.example", "new.a81002@nhs.example"}) {
		t.Fatalf("reopening import = %+v; want A81002 reopened, its two closure-suspended endpoints restored", res)
	}
	for addr, want := range map[string]directory.EndpointStatus{"gp.a81002@nhs.example": directory.StatusVerified,
		"new.a81002@nhs.example": directory.StatusPending, "lab.a81002@nhs.example": directory.StatusSuspended} {
		if e := mustLookup(t, fx.d, addr); e.Status != want {
			t.Errorf("%s after reopening = %s %q, want %s", addr, e.Status, e.StatusReason, want)
		}
	}
	if e := mustLookup(t, fx.d, "lab.a81002@nhs.example"); e.StatusReason != "lab system replaced" || e.SuspendedBy != directory.SuspendedByAdmin {
		t.Errorf("administrator's suspension = %q by %q, want kept", e.StatusReason, e.SuspendedBy)
	}
	if o, _ := fx.d.Organisation(ctx, "A81002"); o.Successor != "" || o.Status != directory.OrgActive {
		t.Errorf("reopened organisation = %+v, want active without a successor", o)
	}
	if _, err := fx.d.CheckRecipient(ctx, "gp.a81002@nhs.example"); err != nil {
		t.Errorf("RCPT after reopening = %v, want accepted", err)
	}
	hasEvent(t, fx.audit, "organisation.reopened", "", "ok")
	hasEvent(t, fx.audit, "endpoint.restored", "gp.a81002@nhs.example", "ok")
}

// An administrator who closes and reopens an organisation by hand gets the
// same: the closure's suspensions undone, nothing else.
func TestPutOrganisationReopens(t *testing.T) {
	t.Parallel()
	gp := directorytest.Verified("gp.a81002@nhs.example", mx)
	gp.ODS = "A81002"
	fx := newFixture(t, gp)
	open := directory.Organisation{ODS: "A81002", Name: "Queens Park", Status: directory.OrgActive, Kind: "gp-practice"}
	closed := open
	closed.Status, closed.ClosedOn, closed.Successor = directory.OrgClosed, t0.AddDate(0, -1, 0), "A81001"
	mustOrg(t, fx.d, directory.Organisation{ODS: "A81001", Name: "Riverside", Status: directory.OrgActive})
	mustOrg(t, fx.d, closed)
	if e := mustLookup(t, fx.d, gp.Address); e.Status != directory.StatusSuspended || e.SuspendedBy != directory.SuspendedByClosure {
		t.Fatalf("after closing: %s by %q", e.Status, e.SuspendedBy)
	}
	mustOrg(t, fx.d, open)
	if e := mustLookup(t, fx.d, gp.Address); e.Status != directory.StatusVerified || e.StatusReason != "" || e.SuspendedBy != "" {
		t.Errorf("after reopening: %s %q by %q, want verified again", e.Status, e.StatusReason, e.SuspendedBy)
	}
	hasEvent(t, fx.audit, "organisation.reopened", "", "ok")
}
