package directory_test

import (
	"errors"
	"strings"
	"testing"

	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

func TestPutOrganisationValidation(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	good := directory.Organisation{ODS: "a81001", Name: " Test Practice ", Postcode: "ls14ap", Phone: "0113 496 0000", Kind: "gp-practice"}
	mustOrg(t, fx.d, good)
	o, err := fx.d.Organisation(t.Context(), "A81001")
	if err != nil || o.ODS != "A81001" || o.Name != "Test Practice" || o.Postcode != "LS1 4AP" || o.Status != directory.OrgActive || o.Source != directory.SourceAdmin {
		t.Fatalf("stored organisation = %+v, %v; want normalised", o, err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*directory.Organisation)
		field string
	}{
		{"no ods", func(o *directory.Organisation) { o.ODS = "" }, "ods"},
		{"short ods", func(o *directory.Organisation) { o.ODS = "A8" }, "ods"},
		{"ods punctuation", func(o *directory.Organisation) { o.ODS = "A81-01" }, "ods"},
		{"no name", func(o *directory.Organisation) { o.Name = "  " }, "name"},
		{"long name", func(o *directory.Organisation) { o.Name = strings.Repeat("n", 201) }, "name"},
		{"control in name", func(o *directory.Organisation) { o.Name = "Bad\x07Name" }, "name"},
		{"status", func(o *directory.Organisation) { o.Status = "open" }, "status"},
		{"self successor", func(o *directory.Organisation) { o.Successor = "b82002" }, "successor"},
		{"bad successor", func(o *directory.Organisation) { o.Successor = "!" }, "successor"},
		{"postcode", func(o *directory.Organisation) { o.Postcode = "12345" }, "postcode"},
		{"phone", func(o *directory.Organisation) { o.Phone = "call us" }, "phone"},
		{"kind", func(o *directory.Organisation) { o.Kind = "GP Practice" }, "kind"},
		{"source", func(o *directory.Organisation) { o.Source = "web" }, "source"},
		{"address line", func(o *directory.Organisation) { o.Address = []string{"ok", strings.Repeat("x", 101)} }, "address[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			o.ODS, o.Name = "B82002", "Other"
			tc.edit(&o)
			err := fx.d.PutOrganisation(admin(t), o)
			if f := fields(t, err); f[tc.field] == "" || len(f) != 1 {
				t.Fatalf("PutOrganisation(%s) fields = %v, want just %s", tc.name, f, tc.field)
			}
			if _, err := fx.d.Organisation(t.Context(), "B82002"); !errors.Is(err, directory.ErrNotFound) {
				t.Fatalf("invalid organisation was written: %v", err)
			}
		})
	}
	// Every bad field at once, each named.
	err = fx.d.PutOrganisation(admin(t), directory.Organisation{ODS: "x", Status: "gone", Postcode: "?"})
	if f := fields(t, err); len(f) != 4 {
		t.Fatalf("fields = %v, want ods, name, status and postcode", f)
	}
	hasEvent(t, fx.audit, "organisation.put", "", "refused")
}

func TestAddEndpointValidation(t *testing.T) {
	t.Parallel()
	fax := directorytest.Verified("taken.a81001@nhs.example", mx)
	fax.FaxNumbers = []string{"+441632960009"}
	fx := newFixture(t, fax)
	mustOrg(t, fx.d, directory.Organisation{ODS: "Z99999", Name: "Closed Practice", Status: directory.OrgClosed})
	e := mustAdd(t, fx.d, directory.Endpoint{Address: "GP@NHS.Example", ODS: "a81001", FaxNumbers: []string{"01632 960001", "+441632960001"}})
	if e.ID == "" || e.Status != directory.StatusPending || e.Address != "GP@nhs.example" || e.Purpose != "general" ||
		e.NextHop != (directory.NextHop{Kind: directory.HopMX, TLS: directory.TLSVerified}) || strings.Join(e.FaxNumbers, ",") != "+441632960001" {
		t.Fatalf("AddEndpoint = %+v, want pending, normalised, defaults filled", e)
	}
	hasEvent(t, fx.audit, "endpoint.added", "GP@nhs.example", "ok")

	base := directory.Endpoint{Address: "new@nhs.example", ODS: "A81001"}
	for _, tc := range []struct {
		name  string
		edit  func(*directory.Endpoint)
		field string
	}{
		{"address", func(e *directory.Endpoint) { e.Address = "new@nhs" }, "address"},
		{"address taken", func(e *directory.Endpoint) { e.Address = "TAKEN.a81001@nhs.example" }, "address"},
		{"unknown ods", func(e *directory.Endpoint) { e.ODS = "Q12345" }, "ods"},
		{"closed ods", func(e *directory.Endpoint) { e.ODS = "Z99999" }, "ods"},
		{"purpose", func(e *directory.Endpoint) { e.Purpose = "gossip" }, "purpose"},
		{"hop kind", func(e *directory.Endpoint) { e.NextHop.Kind = "carrier-pigeon" }, "next_hop.kind"},
		{"hop host missing", func(e *directory.Endpoint) { e.NextHop.Kind = directory.HopHost }, "next_hop.host"},
		{"hop port", func(e *directory.Endpoint) {
			e.NextHop = directory.NextHop{Kind: directory.HopHost, Host: "mx.nhs.example:99999"}
		}, "next_hop.host"},
		{"hop host on mx", func(e *directory.Endpoint) { e.NextHop.Host = "mx.nhs.example:25" }, "next_hop.host"},
		{"plain to remote", func(e *directory.Endpoint) {
			e.NextHop = directory.NextHop{Kind: directory.HopHost, Host: "mx.nhs.example:25", TLS: directory.TLSPlainLoopback}
		}, "next_hop.tls"},
		{"tls mode", func(e *directory.Endpoint) { e.NextHop.TLS = "none" }, "next_hop.tls"},
		{"certificate", func(e *directory.Endpoint) { e.Certificates = [][]byte{[]byte("not DER")} }, "certificates[0]"},
		{"fax", func(e *directory.Endpoint) { e.FaxNumbers = []string{"01632 960002", "fax me"} }, "fax_numbers[1]"},
		{"fax taken", func(e *directory.Endpoint) { e.FaxNumbers = []string{"01632 960009"} }, "fax_numbers"},
		{"contact", func(e *directory.Endpoint) { e.Contacts = []string{"bad\ncontact"} }, "contacts[0]"},
		{"status", func(e *directory.Endpoint) { e.Status = directory.StatusVerified }, "status"},
		{"verification", func(e *directory.Endpoint) { e.Verification.By = "me" }, "verification"},
		{"redirect", func(e *directory.Endpoint) { e.Redirect = "x@nhs.example" }, "redirect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := base
			tc.edit(&e)
			_, err := fx.d.AddEndpoint(admin(t), e)
			if f := fields(t, err); f[tc.field] == "" || len(f) != 1 {
				t.Fatalf("AddEndpoint(%s) fields = %v, want just %s", tc.name, f, tc.field)
			}
		})
	}
	if got := fx.d.Endpoints(t.Context(), directory.Filter{}); len(got) != 2 {
		t.Fatalf("after refused adds: %d endpoints, want 2 (nothing partial written)", len(got))
	}
	// Plain SMTP is fine to a loopback test sink.
	mustAdd(t, fx.d, directory.Endpoint{Address: "sink.nhs.example", ODS: "A81001",
		NextHop: directory.NextHop{Kind: directory.HopHost, Host: "127.0.0.1:2525", TLS: directory.TLSPlainLoopback}})
}

func TestUpdateSuspendRetire(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, directorytest.Verified("gp.a81001@nhs.example", mx))
	ctx := admin(t)
	mustOrg(t, fx.d, directory.Organisation{ODS: "B82002", Name: "Other Practice"})
	e := mustLookup(t, fx.d, "gp.a81001@nhs.example")

	// Contacts change: still verified.
	e.Contacts = []string{"Practice manager, 01632 960000"}
	if err := fx.d.UpdateEndpoint(ctx, e); err != nil {
		t.Fatalf("UpdateEndpoint(contacts): %v", err)
	}
	if got := mustLookup(t, fx.d, e.Address); got.Status != directory.StatusVerified || len(got.Contacts) != 1 {
		t.Fatalf("after contacts update: %+v", got)
	}
	hasEvent(t, fx.audit, "endpoint.updated", e.Address, "ok")

	// Status cannot be changed by update.
	bad := e
	bad.Status = directory.StatusPending
	if f := fields(t, fx.d.UpdateEndpoint(ctx, bad)); f["status"] == "" {
		t.Fatalf("UpdateEndpoint(status) fields = %v, want status", f)
	}
	// Moving to another organisation needs verifying again.
	e.ODS = "B82002"
	if err := fx.d.UpdateEndpoint(ctx, e); err != nil {
		t.Fatalf("UpdateEndpoint(ods): %v", err)
	}
	if got := mustLookup(t, fx.d, e.Address); got.Status != directory.StatusPending || got.Verification != (directory.Verification{}) {
		t.Fatalf("after organisation change: status %s, verification %+v; want pending, none", got.Status, got.Verification)
	}
	if err := fx.d.UpdateEndpoint(ctx, directory.Endpoint{ID: "ep-none"}); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("UpdateEndpoint(missing) = %v, want ErrNotFound", err)
	}

	if f := fields(t, fx.d.Suspend(ctx, e.ID, " ")); f["reason"] == "" {
		t.Fatalf("Suspend without reason: fields %v, want reason", f)
	}
	if err := fx.d.Suspend(ctx, e.ID, "mailbox compromised"); err != nil {
		t.Fatalf("Suspend: %v", err)
	}
	var nv *directory.NotVerifiedError
	if _, err := fx.d.CheckRecipient(ctx, e.Address); !errors.As(err, &nv) || nv.Reason != "suspended: mailbox compromised" {
		t.Fatalf("CheckRecipient(suspended) = %v", err)
	}
	hasEvent(t, fx.audit, "endpoint.suspended", e.Address, "ok")
	if err := fx.d.Retire(ctx, e.ID, "practice merged"); err != nil {
		t.Fatalf("Retire: %v", err)
	}
	if err := fx.d.Retire(ctx, e.ID, "again"); err != nil {
		t.Fatalf("Retire(retired) = %v, want nil (nothing to do)", err)
	}
	for name, err := range map[string]error{
		"suspend": fx.d.Suspend(ctx, e.ID, "x"),
		"attest":  fx.d.Attest(ctx, e.ID, "phoned"),
		"update":  fx.d.UpdateEndpoint(ctx, e),
	} {
		if !errors.Is(err, directory.ErrConflict) {
			t.Errorf("%s of a retired endpoint = %v, want ErrConflict", name, err)
		}
	}
	// Its address is free for a new endpoint; lookups find the live one.
	n := mustAdd(t, fx.d, directory.Endpoint{Address: e.Address, ODS: "A81001"})
	if got := mustLookup(t, fx.d, e.Address); got.ID != n.ID {
		t.Fatalf("Lookup after re-add = %s, want the new endpoint %s", got.ID, n.ID)
	}
	if err := fx.d.Suspend(ctx, "ep-none", "x"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("Suspend(missing) = %v, want ErrNotFound", err)
	}
}

func TestAttest(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, directorytest.Pending("gp.a81001@nhs.example"))
	e := mustLookup(t, fx.d, "gp.a81001@nhs.example")
	if f := fields(t, fx.d.Attest(admin(t), e.ID, "")); f["evidence"] == "" {
		t.Fatalf("Attest without evidence: fields %v", f)
	}
	if err := fx.d.Attest(admin(t), e.ID, "Phoned practice manager on 01632 960000"); err != nil {
		t.Fatalf("Attest: %v", err)
	}
	got, err := fx.d.CheckRecipient(t.Context(), e.Address)
	want := directory.Verification{By: "alice", At: t0, Method: "attestation", Evidence: "Phoned practice manager on 01632 960000", Expires: t0.AddDate(1, 0, 0)}
	if err != nil || got.Verification != want {
		t.Fatalf("after Attest: %+v, %v; want %+v", got.Verification, err, want)
	}
	ev := hasEvent(t, fx.audit, "endpoint.verified", e.Address, "ok")
	if ev.Actor != "alice" || !strings.Contains(ev.Detail, "Phoned practice manager") {
		t.Fatalf("audit event = %+v", ev)
	}
	// A closed organisation's endpoints cannot be verified.
	mustOrg(t, fx.d, directory.Organisation{ODS: "A81001", Name: "Test Practice", Status: directory.OrgDormant})
	if err := fx.d.Attest(admin(t), e.ID, "phoned again"); !errors.Is(err, directory.ErrConflict) || !strings.Contains(err.Error(), "practice dormant") {
		t.Fatalf("Attest(dormant organisation) = %v, want ErrConflict saying dormant", err)
	}
}
