package main

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nhsrelay/audit"
	"nhsrelay/directory"
	"nhsrelay/directory/api"
	"nhsrelay/directory/directorytest"
)

// dirServer runs the directory API on loopback for the CLI to talk to, with
// the actor set as the admin middleware sets it, and returns a config path.
func dirServer(t *testing.T, eps ...directory.Endpoint) (cfgPath string, d *directory.Directory, mail *directorytest.Mailer) {
	t.Helper()
	return dirServerWith(t, nil, eps...)
}

// dirServerWith is dirServer with the directory's config edited first.
func dirServerWith(t *testing.T, edit func(*directory.Config), eps ...directory.Endpoint) (cfgPath string, d *directory.Directory, mail *directorytest.Mailer) {
	t.Helper()
	mail = &directorytest.Mailer{}
	d = directorytest.Open(t, func(c *directory.Config) {
		c.Mailer, c.ChallengeFrom = mail, "directory@relay.nhs.example"
		if edit != nil {
			edit(c)
		}
	}, eps...)
	h := api.New(d, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, `{"error": "bad token"}`, http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r.WithContext(audit.WithActor(r.Context(), "admin")))
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "admin.token"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath = filepath.Join(dir, "nhsrelay.toml")
	cfg := "[admin]\nlisten = \"" + strings.TrimPrefix(srv.URL, "http://") + "\"\ntoken_file = \"admin.token\"\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, d, mail
}

// runDir runs `nhsrelay directory -c cfg args...` and returns its output.
func runDir(t *testing.T, cfg string, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := directoryMain(t.Context(), append([]string{"-c", cfg}, args...), &out, strings.NewReader(stdin))
	return out.String(), err
}

func mustRunDir(t *testing.T, cfg string, args ...string) string {
	t.Helper()
	out, err := runDir(t, cfg, "", args...)
	if err != nil {
		t.Fatalf("directory %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func wantContains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s output lacks %q:\n%s", what, w, got)
		}
	}
}

func TestDirectoryCLILifecycle(t *testing.T) {
	t.Parallel()
	tlsOnly := directorytest.Verified("results@a81001.nhs.example", directory.NextHop{Kind: directory.HopMX})
	tlsOnly.TLSOnly = true
	cfg, d, mail := dirServer(t, tlsOnly)

	out := mustRunDir(t, cfg, "add", "-ods", "a81001", "-purpose", "referrals", "-fax", "01632 960001",
		"referrals@a81001.nhs.example")
	wantContains(t, "add", out, "added referrals@a81001.nhs.example for A81001, pending verification")
	eps := d.Endpoints(t.Context(), directory.Filter{Address: "referrals@a81001.nhs.example"})
	if len(eps) != 1 {
		t.Fatalf("after add: %d endpoints", len(eps))
	}
	id := eps[0].ID

	out = mustRunDir(t, cfg, "list")
	wantContains(t, "list", out, "ID", "ADDRESS", "STATUS", id, "referrals@a81001.nhs.example", "pending", "-- 2 endpoint(s)")
	out = mustRunDir(t, cfg, "list", "-status", "verified")
	if strings.Contains(out, id) {
		t.Errorf("list -status verified shows the pending endpoint:\n%s", out)
	}
	wantContains(t, "list -orgs", mustRunDir(t, cfg, "list", "-orgs"), "A81001", "Test Practice A81001", "-- 1 organisation(s)")
	wantContains(t, "list -json", mustRunDir(t, cfg, "list", "-json"), `"endpoints"`, `"id": "`+id+`"`)

	// Verify by challenge, naming the endpoint by its address.
	out = mustRunDir(t, cfg, "verify", "referrals@a81001.nhs.example", "-challenge")
	wantContains(t, "verify -challenge", out, "a one-time code was sent to referrals@a81001.nhs.example")
	sent := mail.Sent()
	if len(sent) != 1 {
		t.Fatalf("challenge mails = %d, want 1", len(sent))
	}
	if _, err := runDir(t, cfg, "", "verify", "-code", "WRONG-CODE", id); err == nil || !strings.Contains(err.Error(), "code") {
		t.Errorf("verify with a wrong code: err = %v, want one about the code", err)
	}
	out = mustRunDir(t, cfg, "verify", "-code", directorytest.Code(sent[0]), id)
	wantContains(t, "verify -code", out, "verified by challenge until")

	out = mustRunDir(t, cfg, "show", id)
	wantContains(t, "show", out, "id:", id, "organisation:", "A81001 Test Practice A81001 (active)",
		"status:", "verified", "fax numbers:", "+441632960001", "verified:", "by admin (challenge")
	wantContains(t, "show -org", mustRunDir(t, cfg, "show", "-org", "a81001"), "ods:", "A81001", id)

	out = mustRunDir(t, cfg, "suspend", id, "-reason", "mailbox moved")
	wantContains(t, "suspend", out, "suspended: mailbox moved")
	out = mustRunDir(t, cfg, "verify", "-attest", "phoned the practice manager", "referrals@a81001.nhs.example")
	wantContains(t, "verify -attest", out, "verified by attestation until")
	out = mustRunDir(t, cfg, "redirect", id, "results@a81001.nhs.example")
	wantContains(t, "redirect", out, "mail now goes to")
	wantContains(t, "redirect -", mustRunDir(t, cfg, "redirect", id, "-"), "redirect removed")
	wantContains(t, "retire", mustRunDir(t, cfg, "retire", "-reason", "merged", id), "retired: merged")

	// check: yes for the TLS-only endpoint, no (exit 1) for the retired one.
	out = mustRunDir(t, cfg, "check", "results@a81001.nhs.example")
	wantContains(t, "check", out, "results@a81001.nhs.example: OK", "path:", "reason:")
	out, err := runDir(t, cfg, "", "check", "referrals@a81001.nhs.example")
	if !errors.Is(err, errCannotSend) {
		t.Errorf("check of a retired endpoint: err = %v, want errCannotSend", err)
	}
	wantContains(t, "check retired", out, "NO:", "retired")
	if _, err := runDir(t, cfg, "", "check", "-json", "nobody@nowhere.nhs.example"); !errors.Is(err, errCannotSend) {
		t.Errorf("check -json of an unknown address: err = %v, want errCannotSend", err)
	}
}

func TestDirectoryCLIImportExport(t *testing.T) {
	t.Parallel()
	cfg, d, _ := dirServer(t)
	out := mustRunDir(t, cfg, "import-ods", "-v", "../../directory/ods/testdata/epraccur-sample.csv")
	wantContains(t, "import-ods", out, "12 rows: 12 added", "added: A81001")
	out = mustRunDir(t, cfg, "import-ods", "../../directory/ods/testdata/epraccur-sample.csv")
	wantContains(t, "re-import", out, "12 unchanged")

	bad, err := os.ReadFile("../../directory/ods/testdata/epraccur-bad-rows.csv")
	if err != nil {
		t.Fatal(err)
	}
	_, err = runDir(t, cfg, string(bad), "import-ods", "-strict", "-")
	if err == nil || !strings.Contains(err.Error(), "line 2: 4 columns, want 27") {
		t.Errorf("strict import of bad rows: err = %v, want the first bad line named", err)
	}
	if _, err := d.Organisation(t.Context(), "A83001"); err == nil {
		t.Error("a refused strict import wrote A83001")
	}
	out, err = runDir(t, cfg, string(bad), "import-ods", "-")
	if err != nil {
		t.Fatalf("lenient import: %v", err)
	}
	wantContains(t, "lenient import", out, "2 added", "6 rejected", "rejected: line 2: 4 columns, want 27", "rejected: line 7:")

	// Not an epraccur file, or an empty one: one diagnosis, not a rejected
	// row per line; nothing written.
	empty := filepath.Join(t.TempDir(), "empty.csv")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"../../directory/ods/testdata/succ-sample.csv":   "not an epraccur.csv file: every row has 5 columns, as in the ODS successor file succ.csv",
		"../../directory/ods/testdata/etrust-sample.csv": "not an epraccur.csv file: none of the first 4 rows is a GP practice",
		empty: "the file is empty",
	} {
		out, err := runDir(t, cfg, "", "import-ods", file)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(out, "rejected:") {
			t.Errorf("import-ods %s: %v\n%s\nwant one diagnosis saying %q", file, err, out, want)
		}
	}
	if _, err := d.Organisation(t.Context(), "RX9"); err == nil {
		t.Error("a diagnosed import wrote RX9")
	}

	out, err = runDir(t, cfg, `"A81003","A81001","Merger","20240401","1"`+"\n", "import-ods", "-successors", "-v", "-")
	if err != nil {
		t.Fatalf("successor import: %v", err)
	}
	wantContains(t, "successor import", out, "1 successors set", "successor set: A81003")
	if o, _ := d.Organisation(t.Context(), "A81003"); o.Successor != "A81001" {
		t.Errorf("A81003 successor = %q", o.Successor)
	}

	file := filepath.Join(t.TempDir(), "orgs.csv")
	mustRunDir(t, cfg, "export", "-format", "csv", "-what", "organisations", "-o", file)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(data), "\n"); lines != 15 || !strings.HasPrefix(string(data), "ods,name,status") {
		t.Errorf("export csv: %d lines, want header + 14:\n%s", lines, data)
	}
	wantContains(t, "export json", mustRunDir(t, cfg, "export"), `"organisations"`, `"A81006"`)
	if _, err := runDir(t, cfg, "", "export", "-format", "xml", "-o", file); err == nil {
		t.Error("export -format xml: no error")
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed export left %s behind (err %v)", file, err)
	}
}

func TestDirectoryCLIErrors(t *testing.T) {
	t.Parallel()
	cfg, _, _ := dirServer(t, directorytest.Pending("gp@a81001.nhs.example"))
	tests := []struct {
		args []string
		want string
	}{
		{nil, "missing command"},
		{[]string{"frobnicate"}, "unknown directory command"},
		{[]string{"show"}, "want one ENDPOINT or ODS code, got 0"},
		{[]string{"list", "extra"}, "want no arguments"},
		{[]string{"add", "x@y.nhs.example"}, "-ods CODE is required"},
		{[]string{"add", "-ods", "A81001", "not an address"}, "address"},
		{[]string{"add", "-ods", "Z99999", "x@y.nhs.example"}, "ods"},
		{[]string{"verify", "ep-test-1"}, "exactly one of"},
		{[]string{"verify", "-challenge", "-code", "1", "ep-test-1"}, "exactly one of"},
		{[]string{"suspend", "ep-test-1"}, "-reason is required"},
		{[]string{"suspend", "-reason", "x", "ep-nope"}, "no endpoint with ID ep-nope"},
		{[]string{"suspend", "-reason", "x", "nobody@a81001.nhs.example"}, "no endpoint with address"},
		{[]string{"show", "-org", "Z99999"}, "no organisation with ODS code Z99999"},
		{[]string{"list", "-status", "happy"}, "status"},
		{[]string{"list", "-orgs", "-ods", "A81001"}, "takes only -name"},
		{[]string{"import-ods", "/nonexistent/epraccur.csv"}, "no such file"},
		{[]string{"list", "-bogus"}, "flag provided but not defined"},
	}
	for _, tc := range tests {
		_, err := runDir(t, cfg, "", tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("directory %q: err = %v, want %q", tc.args, err, tc.want)
		}
	}
	// A config without an admin section gets serve's defaults, and names
	// the token file it then could not read.
	empty := filepath.Join(t.TempDir(), "empty.toml")
	os.WriteFile(empty, nil, 0o600)
	if _, err := runDir(t, empty, "", "list"); err == nil || !strings.Contains(err.Error(), "admin.token_file") {
		t.Errorf("list with no admin config: err = %v", err)
	}
}
