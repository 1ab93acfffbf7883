package directory_test

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

func TestAccounts(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, directorytest.Verified("gp.a81001@nhs.example", mx))
	ctx := admin(t)
	if _, err := directory.HashPassword("short"); err == nil {
		t.Fatal("HashPassword(short) succeeded")
	}
	if _, err := directory.HashPassword(strings.Repeat("p", 73)); err == nil || !strings.Contains(err.Error(), "72 bytes") {
		t.Fatalf("HashPassword(73 bytes) = %v, want refused, not cut", err)
	}
	if h, err := directory.HashPassword("correct horse battery"); err != nil {
		t.Fatalf("HashPassword: %v", err)
	} else if cost, _ := bcrypt.Cost([]byte(h)); cost != bcrypt.DefaultCost {
		t.Fatalf("HashPassword cost = %d, want %d", cost, bcrypt.DefaultCost)
	}
	hash, err := directory.HashPasswordCost("correct horse battery", bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := fx.d.PutAccount(ctx, directory.Account{Username: "GP1", PasswordHash: hash, ODS: "a81001",
		Addresses: []string{"gp.a81001@NHS.example", "GP.A81001@nhs.example"}}); err != nil {
		t.Fatalf("PutAccount: %v", err)
	}
	a, err := fx.d.Authenticate(ctx, "gp1", "correct horse battery")
	if err != nil || a.Username != "gp1" || a.ODS != "A81001" || len(a.Addresses) != 1 || !a.Owns("GP.a81001@nhs.example") {
		t.Fatalf("Authenticate = %+v, %v", a, err)
	}
	for name, pass := range map[string]string{"gp1": "wrong password", "nobody": "correct horse battery", "": ""} {
		if _, err := fx.d.Authenticate(ctx, name, pass); !errors.Is(err, directory.ErrAuthFailed) {
			t.Errorf("Authenticate(%q, %q) = %v, want ErrAuthFailed", name, pass, err)
		}
	}
	a.Disabled = true
	if err := fx.d.PutAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.d.Authenticate(ctx, "gp1", "correct horse battery"); !errors.Is(err, directory.ErrAuthFailed) {
		t.Fatalf("Authenticate(disabled) = %v, want ErrAuthFailed", err)
	}
	if got, err := fx.d.Account(ctx, "GP1"); err != nil || !got.Disabled {
		t.Fatalf("Account(GP1) = %+v, %v", got, err)
	}
	if _, err := fx.d.Account(ctx, "nobody"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("Account(nobody) = %v, want ErrNotFound", err)
	}
	ev := hasEvent(t, fx.audit, "account.updated", "", "ok")
	if strings.Contains(ev.Detail, hash) {
		t.Fatal("audit event holds the password hash")
	}

	err = fx.d.PutAccount(ctx, directory.Account{Username: "bad user", PasswordHash: "plaintext", ODS: "Q99999",
		Addresses: []string{"nhs.example", "not an address"}})
	f := fields(t, err)
	for _, k := range []string{"username", "password_hash", "ods", "addresses[0]", "addresses[1]"} {
		if f[k] == "" {
			t.Errorf("PutAccount(bad) fields = %v, missing %s", f, k)
		}
	}
	if f := fields(t, fx.d.PutAccount(ctx, directory.Account{Username: "x", PasswordHash: hash})); f["addresses"] == "" {
		t.Errorf("PutAccount(no addresses) fields = %v", f)
	}

	// The directorytest helper builds one in a line.
	directorytest.Account(t, fx.d, "gp2", "another long password", "gp.a81001@nhs.example")
	if _, err := fx.d.Authenticate(ctx, "gp2", "another long password"); err != nil {
		t.Fatalf("Authenticate(gp2): %v", err)
	}
}
