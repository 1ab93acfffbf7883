package directory_test

import (
	"errors"
	"strings"
	"testing"

	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

var mx = directory.NextHop{Kind: directory.HopMX}

func TestCheckRecipient(t *testing.T) {
	t.Parallel()
	successor := directorytest.Verified("gp.b82002@nhs.example", mx)
	successor.ODS = "B82002"
	successorRes := directorytest.Verified("results.b82002@nhs.example", mx)
	successorRes.ODS, successorRes.Purpose = "B82002", directory.PurposeResults
	fx := newFixture(t,
		directorytest.Verified("gp.a81001@nhs.example", mx),
		directorytest.Pending("new.a81001@nhs.example"),
		directorytest.Suspended("old.a81001@nhs.example", "practice closed on 2024-03-31"),
		directorytest.Verified("trust.nhs.example", directory.NextHop{Kind: directory.HopHost, Host: "mx.trust.nhs.example:25"}),
		successor, successorRes,
		directory.Endpoint{Address: "retired.a81001@nhs.example", ODS: "A81001", Status: directory.StatusRetired, StatusReason: "merged"},
	)
	ctx := admin(t)
	// A81001 is succeeded by B82002.
	mustOrg(t, fx.d, directory.Organisation{ODS: "A81001", Name: "Test Practice A81001", Status: directory.OrgActive, Successor: "B82002"})

	for _, tc := range []struct {
		addr, wantAddr            string
		notFound                  bool
		wantReason, wantSuccessor string
	}{
		{addr: "gp.a81001@nhs.example", wantAddr: "gp.a81001@nhs.example"},
		{addr: "GP.A81001@NHS.EXAMPLE", wantAddr: "gp.a81001@nhs.example"},
		{addr: "ward7@trust.nhs.example", wantAddr: "trust.nhs.example"}, // domain endpoint
		{addr: "nobody@nhs.example", notFound: true},
		{addr: "not an address", notFound: true},
		{addr: "new.a81001@nhs.example", wantReason: "not yet verified", wantSuccessor: "B82002 gp.b82002@nhs.example"},
		{addr: "old.a81001@nhs.example", wantReason: "suspended: practice closed on 2024-03-31", wantSuccessor: "B82002 gp.b82002@nhs.example"},
		{addr: "retired.a81001@nhs.example", wantReason: "retired: merged", wantSuccessor: "B82002 gp.b82002@nhs.example"},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			e, err := fx.d.CheckRecipient(ctx, tc.addr)
			var nv *directory.NotVerifiedError
			switch {
			case tc.notFound:
				if !errors.Is(err, directory.ErrNotFound) {
					t.Fatalf("CheckRecipient(%s) = %v, want ErrNotFound", tc.addr, err)
				}
			case tc.wantReason != "":
				if !errors.As(err, &nv) || nv.Reason != tc.wantReason || nv.Successor != tc.wantSuccessor {
					t.Fatalf("CheckRecipient(%s) = %#v, want NotVerifiedError{Reason: %q, Successor: %q}", tc.addr, err, tc.wantReason, tc.wantSuccessor)
				}
			default:
				if err != nil || e.Address != tc.wantAddr {
					t.Fatalf("CheckRecipient(%s) = %s, %v; want %s", tc.addr, e.Address, err, tc.wantAddr)
				}
			}
		})
	}
	t.Run("successor of same purpose preferred", func(t *testing.T) {
		res := directorytest.Pending("lab.a81001@nhs.example")
		res.Purpose = directory.PurposeResults
		e := mustAdd(t, fx.d, res)
		_, err := fx.d.CheckRecipient(ctx, e.Address)
		var nv *directory.NotVerifiedError
		if !errors.As(err, &nv) || nv.Successor != "B82002 results.b82002@nhs.example" {
			t.Fatalf("CheckRecipient(results endpoint) = %v, want successor results.b82002@nhs.example", err)
		}
	})
	t.Run("expired verification", func(t *testing.T) {
		fx := newFixture(t, directorytest.Verified("gp.a81001@nhs.example", mx))
		fx.clock.Advance(directory.DefaultReverifyAfter)
		_, err := fx.d.CheckRecipient(t.Context(), "gp.a81001@nhs.example")
		var nv *directory.NotVerifiedError
		if !errors.As(err, &nv) || nv.Reason != "suspended: verification expired on 2027-03-02; verify again" || nv.Status != directory.StatusSuspended {
			t.Fatalf("CheckRecipient(expired) = %v, want verification expired", err)
		}
	})
}

func TestRedirect(t *testing.T) {
	t.Parallel()
	to := directorytest.Verified("gp.b82002@nhs.example", mx)
	to.ODS = "B82002"
	fx := newFixture(t, directorytest.Suspended("gp.a81001@nhs.example", "practice closed on 2024-03-31"), to,
		directorytest.Pending("pending.b82002@nhs.example"))
	ctx := admin(t)
	from := mustLookup(t, fx.d, "gp.a81001@nhs.example")
	if err := fx.d.SetRedirect(ctx, from.ID, "GP.B82002@nhs.example"); err != nil {
		t.Fatalf("SetRedirect: %v", err)
	}
	ev := hasEvent(t, fx.audit, "endpoint.redirect", "gp.a81001@nhs.example", "ok")
	if ev.Actor != "alice" || !strings.Contains(ev.Detail, "now goes to gp.b82002@nhs.example") {
		t.Errorf("redirect audit event = %+v", ev)
	}
	e, err := fx.d.CheckRecipient(ctx, "gp.a81001@nhs.example")
	if err != nil || e.Address != "gp.b82002@nhs.example" {
		t.Fatalf("CheckRecipient(redirected) = %s, %v; want gp.b82002@nhs.example", e.Address, err)
	}

	// One hop only, never to itself, never to a missing endpoint.
	target := mustLookup(t, fx.d, "gp.b82002@nhs.example")
	pending := mustLookup(t, fx.d, "pending.b82002@nhs.example")
	for _, tc := range []struct{ id, to, want string }{
		{target.ID, "pending.b82002@nhs.example", "target of"},
		{pending.ID, "gp.a81001@nhs.example", "itself redirected"},
		{pending.ID, "pending.b82002@nhs.example", "itself"},
		{pending.ID, "nobody@nhs.example", "no endpoint"},
		{pending.ID, "not an address", "must contain a dot"},
	} {
		if err := fx.d.SetRedirect(ctx, tc.id, tc.to); err == nil || !strings.Contains(fields(t, err)["redirect"], tc.want) {
			t.Errorf("SetRedirect(%s → %s) = %v, want redirect error containing %q", tc.id, tc.to, err, tc.want)
		}
	}

	// Redirect to an endpoint that is not verified is refused at RCPT.
	if err := fx.d.SetRedirect(ctx, from.ID, pending.ID); err != nil {
		t.Fatalf("SetRedirect(to pending by ID): %v", err)
	}
	var nv *directory.NotVerifiedError
	if _, err := fx.d.CheckRecipient(ctx, "gp.a81001@nhs.example"); !errors.As(err, &nv) || nv.Reason != "not yet verified" {
		t.Fatalf("CheckRecipient(redirected to pending) = %v, want not yet verified", err)
	}
	if err := fx.d.SetRedirect(ctx, from.ID, ""); err != nil {
		t.Fatalf("SetRedirect(clear): %v", err)
	}
	if _, err := fx.d.CheckRecipient(ctx, "gp.a81001@nhs.example"); !errors.As(err, &nv) || !strings.HasPrefix(nv.Reason, "suspended") {
		t.Fatalf("CheckRecipient(redirect cleared) = %v, want suspended", err)
	}
}

func TestLookups(t *testing.T) {
	t.Parallel()
	fax := directorytest.Verified("gp.a81001@nhs.example", mx)
	fax.FaxNumbers = []string{"+441632960001"}
	other := directorytest.Pending("gp.b82002@nhs.example")
	other.ODS = "B82002"
	fx := newFixture(t, fax, other, directorytest.Verified("nhs.example", mx))
	ctx := t.Context()
	mustOrg(t, fx.d, directory.Organisation{ODS: "B82002", Name: "Castle Medical Centre", Status: directory.OrgActive})
	mustOrg(t, fx.d, directory.Organisation{ODS: "C83003", Name: "St. Mary's Surgery", Status: directory.OrgActive})

	for _, n := range []string{"01632 960001", "+44 (0)1632 960001", "tel:+44-1632-960001"} {
		if e, err := fx.d.ByFax(ctx, n); err != nil || e.Address != "gp.a81001@nhs.example" {
			t.Errorf("ByFax(%q) = %s, %v; want gp.a81001@nhs.example", n, e.Address, err)
		}
	}
	if _, err := fx.d.ByFax(ctx, "01632 960002"); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("ByFax(unknown) = %v, want ErrNotFound", err)
	}
	if e := mustLookup(t, fx.d, "someone@NHS.example"); e.Address != "nhs.example" {
		t.Errorf("Lookup(someone@nhs.example) = %s, want the domain endpoint", e.Address)
	}
	if e := mustLookup(t, fx.d, "GP.B82002@nhs.example"); e.Address != "gp.b82002@nhs.example" {
		t.Errorf("Lookup(mailbox) = %s, want the mailbox before the domain", e.Address)
	}
	byID, err := fx.d.Endpoint(ctx, mustLookup(t, fx.d, "nhs.example").ID)
	if err != nil || byID.Address != "nhs.example" {
		t.Errorf("Endpoint(id) = %s, %v", byID.Address, err)
	}
	if _, err := fx.d.Endpoint(ctx, "ep-nope"); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("Endpoint(missing) = %v, want ErrNotFound", err)
	}
	if o, err := fx.d.Organisation(ctx, "b82002"); err != nil || o.Name != "Castle Medical Centre" {
		t.Errorf("Organisation(b82002) = %+v, %v", o, err)
	}

	names := func(os []directory.Organisation) string {
		var s []string
		for _, o := range os {
			s = append(s, o.ODS)
		}
		return strings.Join(s, ",")
	}
	for q, want := range map[string]string{
		"":             "B82002,C83003,A81001", // by name: Castle, St. Mary's, Test
		"castle med":   "B82002",
		"MED":          "B82002",
		"mary":         "C83003",
		"st marys":     "C83003",
		"st. mary’s":   "C83003",
		"st mary":      "C83003",
		"a81":          "A81001", // ODS prefix
		"centre medic": "B82002",
		"surgery x":    "",
	} {
		if got := names(fx.d.Organisations(ctx, q)); got != want {
			t.Errorf("Organisations(%q) = %s, want %s", q, got, want)
		}
	}

	addrs := func(eps []directory.Endpoint) string {
		var s []string
		for _, e := range eps {
			s = append(s, e.Address)
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		f    directory.Filter
		want string
	}{
		{directory.Filter{}, "gp.a81001@nhs.example,gp.b82002@nhs.example,nhs.example"},
		{directory.Filter{ODS: "b82002"}, "gp.b82002@nhs.example"},
		{directory.Filter{Status: directory.StatusPending}, "gp.b82002@nhs.example"},
		{directory.Filter{Address: "nhs.example"}, "gp.a81001@nhs.example,gp.b82002@nhs.example,nhs.example"},
		{directory.Filter{Address: "mailto:GP.A81001@nhs.example"}, "gp.a81001@nhs.example"},
		{directory.Filter{Name: "castle"}, "gp.b82002@nhs.example"},
		{directory.Filter{Name: "test", Status: directory.StatusVerified}, "gp.a81001@nhs.example,nhs.example"},
	} {
		if got := addrs(fx.d.Endpoints(ctx, tc.f)); got != tc.want {
			t.Errorf("Endpoints(%+v) = %s, want %s", tc.f, got, tc.want)
		}
	}
}

// TestDurable checks writes are in the Store: a directory opened afresh on
// it sees them.
func TestDurable(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	mustOrg(t, fx.d, directory.Organisation{ODS: "A81001", Name: "Test Practice"})
	e := mustAdd(t, fx.d, directorytest.Pending("gp.a81001@nhs.example"))
	if err := fx.d.Attest(admin(t), e.ID, "phoned the practice manager"); err != nil {
		t.Fatalf("Attest: %v", err)
	}
	d2, err := directory.Open(t.Context(), directory.Config{Store: fx.store, Now: fx.clock.Now})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if got, err := d2.CheckRecipient(t.Context(), e.Address); err != nil || got.Verification.By != "alice" {
		t.Fatalf("reopened CheckRecipient = %+v, %v; want verified by alice", got, err)
	}
	// Refresh picks up another writer's changes.
	if err := d2.Suspend(t.Context(), e.ID, "mailbox compromised"); err != nil {
		t.Fatalf("Suspend: %v", err)
	}
	if err := fx.d.Refresh(t.Context()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if got := mustLookup(t, fx.d, e.Address); got.Status != directory.StatusSuspended {
		t.Fatalf("after Refresh: status %s, want suspended", got.Status)
	}
}
