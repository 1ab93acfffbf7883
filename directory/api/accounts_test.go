package api

import (
	"bytes"
	"encoding/csv"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestAccountsAPI(t *testing.T) {
	t.Parallel()
	other := verified("gp.b82002@nhs.example")
	other.ODS = "B82002"
	f := start(t, options{}, verified("gp.a81001@nhs.example"), verified("reception.a81001@nhs.example"), other)
	const base = "/v1/accounts"

	// Created with a generated password, shown once; never the hash.
	var created AccountPassword
	r := f.do(t, "POST", base, map[string]any{"username": "GP1", "addresses": []string{"gp.a81001@nhs.example"},
		"note": "front desk", "receipts": "on-request"}, "X-Test-Actor", "bob").want(t, http.StatusCreated, &created)
	if created.Password == "" || created.Account.Username != "gp1" || created.Account.ODS != "A81001" {
		t.Fatalf("POST = %s", r.body)
	}
	if strings.Contains(string(r.body), "$2") || strings.Contains(string(r.body), "password_hash") {
		t.Fatalf("answer holds the hash: %s", r.body)
	}
	if loc := r.header.Get("Location"); loc != base+"/gp1" {
		t.Errorf("Location = %q", loc)
	}
	if _, err := f.d.Authenticate(t.Context(), "gp1", created.Password); err != nil {
		t.Fatalf("generated password does not log in: %v", err)
	}
	var ev = f.audit.Events()[len(f.audit.Events())-1]
	if ev.Action != "account.added" || ev.Actor != "bob" {
		t.Fatalf("audit = %+v, want account.added by bob", ev)
	}

	// Every bad field in one 400, nothing written.
	before := len(f.d.Accounts(t.Context()))
	e := f.do(t, "POST", base, map[string]any{"username": "bad user", "ods": "A81001", "password": "short",
		"addresses": []string{"gp.b82002@nhs.example", "nobody@nowhere.example"}, "receipts": "sometimes",
		"disabled": true}).wantError(t, http.StatusBadRequest, "")
	for _, k := range []string{"username", "password", "addresses[0]", "addresses[1]", "receipts", "disabled"} {
		if e.Fields[k] == "" {
			t.Errorf("fields = %v, missing %s", e.Fields, k)
		}
	}
	if !strings.Contains(e.Fields["addresses[0]"], "B82002") {
		t.Errorf("addresses[0] = %q, want the organisation it belongs to", e.Fields["addresses[0]"])
	}
	if got := len(f.d.Accounts(t.Context())); got != before {
		t.Fatalf("refused POST wrote an account: %d accounts, want %d", got, before)
	}
	f.do(t, "POST", base, map[string]any{"username": "gp1", "addresses": []string{"gp.a81001@nhs.example"}}).
		wantError(t, http.StatusConflict, "")
	f.do(t, "POST", base, `{"username": "gp3", "addresses": "gp.a81001@nhs.example"}`).wantError(t, http.StatusBadRequest, "addresses")

	// A chosen password.
	created = AccountPassword{}
	f.do(t, "POST", base, map[string]any{"username": "pas", "addresses": []string{"reception.a81001@nhs.example"},
		"password": "a chosen long password"}).want(t, http.StatusCreated, &created)
	if created.Password != "" {
		t.Fatalf("a chosen password was echoed: %+v", created)
	}

	var list AccountList
	f.do(t, "GET", base, nil).want(t, http.StatusOK, &list)
	if len(list.Accounts) != 2 || list.Accounts[0].Username != "gp1" || list.Accounts[1].Username != "pas" {
		t.Fatalf("GET list = %+v", list)
	}
	f.do(t, "GET", base+"?x=1", nil).wantError(t, http.StatusBadRequest, "x")

	// Disable with a reason; the login fails and says so.
	f.do(t, "POST", base+"/gp1/disable", map[string]string{}).wantError(t, http.StatusBadRequest, "reason")
	var acted AccountPassword
	f.do(t, "POST", base+"/gp1/disable", map[string]string{"reason": "left the practice"}).want(t, http.StatusOK, &acted)
	if !acted.Account.Disabled || acted.Account.DisabledReason != "left the practice" {
		t.Fatalf("disable = %+v", acted)
	}
	if _, err := f.d.Authenticate(t.Context(), "gp1", created.Password); err == nil {
		t.Fatal("disabled account logged in")
	}
	acted = AccountPassword{}
	f.do(t, "POST", base+"/gp1/enable", nil).want(t, http.StatusOK, &acted)
	if acted.Account.Disabled {
		t.Fatalf("enable = %+v", acted)
	}

	// New password: generated, or given on standard input by the CLI.
	acted = AccountPassword{}
	f.do(t, "POST", base+"/gp1/password", nil).want(t, http.StatusOK, &acted)
	if acted.Password == "" {
		t.Fatal("password reset answered no password")
	}
	if _, err := f.d.Authenticate(t.Context(), "gp1", acted.Password); err != nil {
		t.Fatalf("new password: %v", err)
	}
	f.do(t, "POST", base+"/gp1/password", map[string]string{"password": "tiny"}).wantError(t, http.StatusBadRequest, "password")
	f.do(t, "POST", base+"/gp1/password", map[string]string{"password": "another long password"}).want(t, http.StatusOK, nil)
	if _, err := f.d.Authenticate(t.Context(), "gp1", "another long password"); err != nil {
		t.Fatalf("given password: %v", err)
	}

	// Owns +/-.
	f.do(t, "POST", base+"/gp1/owns", map[string]any{"add": []string{"reception.a81001@nhs.example"}}).want(t, http.StatusOK, &acted)
	if len(acted.Account.Addresses) != 2 {
		t.Fatalf("owns + = %+v", acted.Account)
	}
	f.do(t, "POST", base+"/gp1/owns", map[string]any{"add": []string{"gp.b82002@nhs.example"}}).wantError(t, http.StatusBadRequest, "addresses[2]")
	f.do(t, "POST", base+"/gp1/owns", map[string]any{"remove": []string{"nobody@nhs.example"}}).wantError(t, http.StatusBadRequest, "remove[0]")
	f.do(t, "POST", base+"/gp1/owns", map[string]any{}).wantError(t, http.StatusBadRequest, "add")
	f.do(t, "POST", base+"/gp1/frobnicate", nil).wantError(t, http.StatusNotFound, "")

	// PUT replaces the editable fields; state fields are refused by name.
	var got Account
	f.do(t, "PUT", base+"/gp1", map[string]any{"addresses": []string{"gp.b82002@nhs.example"}, "ods": "b82002", "receipts": "always"}).
		want(t, http.StatusOK, &got)
	if got.ODS != "B82002" || got.Receipts != "always" || got.Note != "" {
		t.Fatalf("PUT = %+v", got)
	}
	e = f.do(t, "PUT", base+"/gp1", map[string]any{"addresses": []string{"gp.a81001@nhs.example"}, "ods": "B82002", "password_hash": "x",
		"receipts": "bogus"}).wantError(t, http.StatusBadRequest, "password_hash")
	if e.Fields["receipts"] == "" || e.Fields["addresses[0]"] == "" {
		t.Errorf("PUT fields = %v, want receipts and addresses[0] named too", e.Fields)
	}
	if a, _ := f.d.Account(t.Context(), "gp1"); a.ODS != "B82002" {
		t.Fatalf("refused PUT wrote: %+v", a)
	}

	f.do(t, "GET", base+"/nobody", nil).wantError(t, http.StatusNotFound, "")
	f.do(t, "PATCH", base+"/gp1", nil).wantError(t, http.StatusMethodNotAllowed, "")
	f.do(t, "DELETE", base+"/gp1", nil).want(t, http.StatusNoContent, nil)
	f.do(t, "DELETE", base+"/gp1", nil).wantError(t, http.StatusNotFound, "")
	if _, err := f.d.Account(t.Context(), "gp1"); err == nil {
		t.Fatal("deleted account still there")
	}
	for _, a := range []string{"account.disabled", "account.enabled", "account.password", "account.updated", "account.deleted"} {
		found := false
		for _, ev := range f.audit.Events() {
			found = found || (ev.Action == a && ev.Outcome == "ok" && ev.Actor == "alice")
		}
		if !found {
			t.Errorf("no audit event %s by alice in %v", a, f.audit.Actions())
		}
	}
}

// Accounts are exported for backup and review, never with their hashes.
func TestExportAccounts(t *testing.T) {
	t.Parallel()
	f := start(t, options{}, verified("gp.a81001@nhs.example"))
	f.do(t, "POST", "/v1/accounts", map[string]any{"username": "gp1", "addresses": []string{"gp.a81001@nhs.example"},
		"note": "=cmd|' /C calc'!A0"}).want(t, http.StatusCreated, nil)
	var exp Export
	r := f.do(t, "GET", "/v1/directory/export", nil).want(t, http.StatusOK, &exp)
	if len(exp.Accounts) != 1 || exp.Accounts[0].Username != "gp1" || exp.Accounts[0].ODS != "A81001" {
		t.Fatalf("JSON export accounts = %+v", exp.Accounts)
	}
	if strings.Contains(string(r.body), "$2") || strings.Contains(string(r.body), "password_hash") {
		t.Fatalf("JSON export holds a hash: %s", r.body)
	}
	r = f.do(t, "GET", "/v1/directory/export?format=csv&what=accounts", nil).want(t, http.StatusOK, nil)
	rows, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil || len(rows) != 2 || !slices.Equal(rows[0], AccountCSVHeader) {
		t.Fatalf("CSV accounts = %q, %v", rows, err)
	}
	if rows[1][0] != "gp1" || rows[1][2] != "gp.a81001@nhs.example" || rows[1][6] != "'=cmd|' /C calc'!A0" {
		t.Fatalf("CSV row = %q (the note must be defused for spreadsheets)", rows[1])
	}
	if strings.Contains(string(r.body), "$2") {
		t.Fatalf("CSV export holds a hash: %s", r.body)
	}
}
