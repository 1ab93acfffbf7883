package directory_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

// accountFixture: organisation A81001 with a mailbox endpoint and a domain
// endpoint, B82002 with one mailbox, and the login cache on.
func accountFixture(t *testing.T) *fixture {
	t.Helper()
	b := directorytest.Verified("gp.b82002@nhs.example", mx)
	b.ODS = "B82002"
	fx := newFixture(t, directorytest.Verified("gp.a81001@nhs.example", mx),
		directorytest.Verified("a81001.nhs.example", mx), directorytest.Pending("reception.a81001@nhs.example"), b)
	d, err := directory.Open(t.Context(), directory.Config{Store: fx.store, Now: fx.clock.Now, Audit: fx.audit,
		HashCost: bcrypt.MinCost, AuthCacheTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	fx.d = d
	return fx
}

func hashOf(t *testing.T, pw string) string {
	t.Helper()
	h, err := directory.HashPasswordCost(pw, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestAddAccountOwnsOnlyItsOrganisationsEndpoints(t *testing.T) {
	t.Parallel()
	fx := accountFixture(t)
	ctx := admin(t)
	// No ODS given: the organisation is the first address's; a domain
	// endpoint covers its mailboxes; a pending endpoint is still the org's.
	a, err := fx.d.AddAccount(ctx, directory.Account{Username: "GP1", PasswordHash: hashOf(t, "first password"),
		Addresses: []string{"gp.a81001@nhs.example", "anyone@A81001.nhs.example", "reception.a81001@nhs.example"},
		Note:      "front desk", Receipts: "never"})
	if err != nil {
		t.Fatalf("AddAccount: %v", err)
	}
	if a.Username != "gp1" || a.ODS != "A81001" || !a.Created.Equal(t0) || !a.PasswordSet.Equal(t0) || a.Receipts != "never" {
		t.Fatalf("AddAccount = %+v", a)
	}
	ev := hasEvent(t, fx.audit, "account.added", "", "ok")
	if ev.Actor != "alice" || !strings.Contains(ev.Detail, "gp1") || strings.Contains(ev.Detail, a.PasswordHash) {
		t.Fatalf("audit event = %+v", ev)
	}
	if _, err := fx.d.AddAccount(ctx, directory.Account{Username: "gp1", PasswordHash: hashOf(t, "first password"),
		Addresses: []string{"gp.a81001@nhs.example"}}); !errors.Is(err, directory.ErrConflict) {
		t.Fatalf("AddAccount(existing) = %v, want ErrConflict", err)
	}

	// Every bad field named in one error; nothing written.
	_, err = fx.d.AddAccount(ctx, directory.Account{Username: "gp2", PasswordHash: hashOf(t, "first password"), ODS: "A81001",
		Addresses: []string{"gp.b82002@nhs.example", "stranger@nowhere.example", "gp.a81001@nhs.example"}, Receipts: "sometimes"})
	f := fields(t, err)
	if !strings.Contains(f["addresses[0]"], "endpoint of B82002") || !strings.Contains(f["addresses[0]"], "A81001") {
		t.Errorf("addresses[0] = %q, want it to name both organisations", f["addresses[0]"])
	}
	if !strings.Contains(f["addresses[1]"], "not an endpoint in the directory") {
		t.Errorf("addresses[1] = %q", f["addresses[1]"])
	}
	if f["receipts"] == "" || f["addresses[2]"] != "" {
		t.Errorf("fields = %v, want receipts and not addresses[2]", f)
	}
	if _, err := fx.d.Account(ctx, "gp2"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("refused account was written: %v", err)
	}
	hasEvent(t, fx.audit, "account.add", "", "refused")
}

func TestAccountLifecycle(t *testing.T) {
	t.Parallel()
	fx := accountFixture(t)
	ctx := admin(t)
	if _, err := fx.d.AddAccount(ctx, directory.Account{Username: "gp1", PasswordHash: hashOf(t, "first password"),
		Addresses: []string{"gp.a81001@nhs.example"}}); err != nil {
		t.Fatal(err)
	}
	n := directory.CountCompares(fx.d)
	mustAuth(t, fx.d, "gp1", "first password")
	mustAuth(t, fx.d, "gp1", "first password") // cached
	if n.Load() != 1 {
		t.Fatalf("%d bcrypt comparisons, want 1 (second login cached)", n.Load())
	}

	// Disable: the next AUTH says so (after the right password only).
	if err := fx.d.DisableAccount(ctx, "gp1", ""); fields(t, err)["reason"] == "" {
		t.Fatalf("DisableAccount without a reason = %v", err)
	}
	if err := fx.d.DisableAccount(ctx, "GP1", "left the practice"); err != nil {
		t.Fatal(err)
	}
	var dis *directory.AccountDisabledError
	if _, err := fx.d.Authenticate(ctx, "gp1", "first password"); !errors.As(err, &dis) || dis.Reason != "left the practice" ||
		!errors.Is(err, directory.ErrAuthFailed) {
		t.Fatalf("Authenticate(disabled) = %v, want *AccountDisabledError wrapping ErrAuthFailed", err)
	}
	if _, err := fx.d.Authenticate(ctx, "gp1", "wrong password"); errors.As(err, &dis) || !errors.Is(err, directory.ErrAuthFailed) {
		t.Fatalf("Authenticate(disabled, wrong password) = %v, want plain ErrAuthFailed", err)
	}
	if _, err := fx.d.ActiveAccount(ctx, "gp1"); !errors.As(err, &dis) {
		t.Fatalf("ActiveAccount(disabled) = %v", err)
	}
	if ev := hasEvent(t, fx.audit, "account.disabled", "", "ok"); !strings.Contains(ev.Detail, "left the practice") {
		t.Fatalf("audit = %+v", ev)
	}
	if err := fx.d.EnableAccount(ctx, "gp1"); err != nil {
		t.Fatal(err)
	}
	mustAuth(t, fx.d, "gp1", "first password")
	if a, _ := fx.d.Account(ctx, "gp1"); a.Disabled || a.DisabledReason != "" {
		t.Fatalf("after enable = %+v", a)
	}
	hasEvent(t, fx.audit, "account.enabled", "", "ok")

	// New password: the old one fails at once, though it was cached.
	fx.clock.Advance(time.Hour / 2)
	if err := fx.d.SetPassword(ctx, "gp1", hashOf(t, "second password")); err != nil {
		t.Fatal(err)
	}
	mustFailAuth(t, fx.d, "gp1", "first password")
	mustAuth(t, fx.d, "gp1", "second password")
	if a, _ := fx.d.Account(ctx, "gp1"); !a.PasswordSet.Equal(t0.Add(time.Hour/2)) || !a.Created.Equal(t0) {
		t.Fatalf("times after SetPassword = %+v", a)
	}
	if ev := hasEvent(t, fx.audit, "account.password", "", "ok"); strings.Contains(ev.Detail, "$2") {
		t.Fatalf("audit holds a hash: %+v", ev)
	}
	if err := fx.d.SetPassword(ctx, "gp1", "plain text"); fields(t, err)["password_hash"] == "" {
		t.Fatalf("SetPassword(not bcrypt) = %v", err)
	}

	// Owns: add and remove, each checked.
	a, err := fx.d.ChangeAddresses(ctx, "gp1", []string{"Reception.A81001@nhs.example"}, nil)
	if err != nil || !a.Owns("reception.a81001@nhs.example") || len(a.Addresses) != 2 {
		t.Fatalf("ChangeAddresses(+) = %+v, %v", a, err)
	}
	_, err = fx.d.ChangeAddresses(ctx, "gp1", []string{"gp.b82002@nhs.example"}, []string{"nobody@nhs.example"})
	if f := fields(t, err); f["remove[0]"] == "" || !strings.Contains(f["addresses[2]"], "B82002") {
		t.Fatalf("ChangeAddresses(remove unowned, add another organisation's) fields = %v, want both named", f)
	}
	if _, err = fx.d.ChangeAddresses(ctx, "gp1", []string{"gp.b82002@nhs.example"}, nil); !strings.Contains(fields(t, err)["addresses[2]"], "B82002") {
		t.Fatalf("ChangeAddresses(other org) = %v", err)
	}
	if _, err = fx.d.ChangeAddresses(ctx, "gp1", nil, []string{"gp.a81001@nhs.example", "reception.a81001@nhs.example"}); fields(t, err)["addresses"] == "" {
		t.Fatalf("ChangeAddresses(remove all) = %v", err)
	}
	a, err = fx.d.ChangeAddresses(ctx, "gp1", nil, []string{"GP.a81001@nhs.example"})
	if err != nil || a.Owns("gp.a81001@nhs.example") || len(a.Addresses) != 1 {
		t.Fatalf("ChangeAddresses(-) = %+v, %v", a, err)
	}

	// Update replaces the editable fields.
	a, err = fx.d.UpdateAccount(ctx, "gp1", directory.AccountUpdate{ODS: "b82002", Addresses: []string{"gp.b82002@nhs.example"}, Note: "moved", Receipts: "always"})
	if err != nil || a.ODS != "B82002" || a.Receipts != "always" || a.Note != "moved" {
		t.Fatalf("UpdateAccount = %+v, %v", a, err)
	}
	if ev := fx.audit.Events()[len(fx.audit.Events())-1]; ev.Action != "account.updated" || !strings.Contains(ev.Detail, "changed ods, addresses, receipts, note") {
		t.Fatalf("update audit = %+v", ev)
	}

	// Delete: gone, its cached login too.
	mustAuth(t, fx.d, "gp1", "second password")
	if err := fx.d.DeleteAccount(ctx, "gp1"); err != nil {
		t.Fatal(err)
	}
	mustFailAuth(t, fx.d, "gp1", "second password")
	if err := fx.d.DeleteAccount(ctx, "gp1"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("DeleteAccount(gone) = %v", err)
	}
	hasEvent(t, fx.audit, "account.deleted", "", "ok")
	if got := fx.d.Accounts(ctx); len(got) != 0 {
		t.Fatalf("Accounts after delete = %+v", got)
	}
	// The store has it gone too: a fresh Open does not bring it back.
	d2, err := directory.Open(t.Context(), directory.Config{Store: fx.store, HashCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d2.Account(ctx, "gp1"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("deleted account after reopen: %v", err)
	}
}

// An account keeps working when an address it already owns stops being an
// endpoint: disabling it must still be possible.
func TestAccountChangesSurviveRetiredEndpoint(t *testing.T) {
	t.Parallel()
	fx := accountFixture(t)
	ctx := admin(t)
	if _, err := fx.d.AddAccount(ctx, directory.Account{Username: "gp1", PasswordHash: hashOf(t, "first password"),
		Addresses: []string{"reception.a81001@nhs.example"}}); err != nil {
		t.Fatal(err)
	}
	e := mustLookup(t, fx.d, "reception.a81001@nhs.example")
	if err := fx.d.Retire(ctx, e.ID, "practice merged"); err != nil {
		t.Fatal(err)
	}
	if err := fx.d.DisableAccount(ctx, "gp1", "endpoint retired"); err != nil {
		t.Fatalf("DisableAccount after retirement: %v", err)
	}
}
