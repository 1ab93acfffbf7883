package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestNoticesEndToEnd drives the real binary: dkim keygen, serve with
// [notices] on, a credential made with the CLI, a notice POSTed over HTTPS
// (verified against the development CA), its status, and the letter it
// becomes in the print queue. The patient has no email here: a test must
// not look up an MX on the internet (the email path is tested in notices/
// against a loopback MX).
func TestNoticesEndToEnd(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "run")
	runBin(t, bin, "init", dir)
	keyFile := filepath.Join(dir, "dkim.key")
	if out := runBin(t, bin, "dkim", "keygen", "-o", keyFile, "riverside.nhs.example", "s1"); !strings.Contains(out, "s1._domainkey.riverside.nhs.example. IN TXT") {
		t.Fatalf("keygen printed %s", out)
	}
	cfgPath := filepath.Join(dir, "nhsrelay.toml")
	text := readFile(t, cfgPath)
	for _, key := range []string{"submission_listen", "submissions_listen", "mx_listen", "listen"} {
		text, _ = setKey(text, key, `"127.0.0.1:0"`)
	}
	text = strings.Replace(text, "[notices]\n", "[notices]\nhttp_listen = \"127.0.0.1:0\"\n", 1)
	text = strings.Replace(text, "\nhttp_listen = \"\"\n# From:", "\n# From:", 1)
	text = strings.Replace(text, "\ndkim = []\n", "\ndkim = [{domain = \"riverside.nhs.example\", selector = \"s1\", key_file = \"dkim.key\"}]\n", 1)
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, bin, cfgPath)
	bound := srv.listeners(t, filepath.Join(dir, "data", "listeners.json"))
	srv.waitReady(t, "http://"+bound.Admin+"/healthz")
	if bound.Notices == "" {
		t.Fatalf("listeners.json has no notices address\n%s", srv.log())
	}
	cliPath := filepath.Join(dir, "cli.toml")
	os.WriteFile(cliPath, []byte("[admin]\nlisten = "+strconv.Quote(bound.Admin)+"\ntoken_file = \"admin.token\"\n"), 0o600)

	out := runBin(t, bin, "notices", "-c", cliPath, "credential", "add", "-name", "Riverside PAS", "-org", "A81001")
	tok := regexp.MustCompile(`token \(shown once\): (\S+)`).FindStringSubmatch(out)
	if tok == nil {
		t.Fatalf("credential add printed %s", out)
	}
	if out := runBin(t, bin, "notices", "-c", cliPath, "credential", "list"); !strings.Contains(out, "Riverside PAS") {
		t.Fatalf("credential list: %s", out)
	}

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(readFile(t, filepath.Join(dir, "ca", "ca.crt"))))
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
	start := time.Now().Add(72 * time.Hour).Format("2006-01-02T15:04:05")
	end := time.Now().Add(73 * time.Hour).Format("2006-01-02T15:04:05")
	body := `{"reference":"E2E-1","organisation":"A81001","kind":"new",
	  "patient":{"name":"Ada Lovelace","address":{"lines":["12 Analytical Row","Leeds"],"postcode":"LS2 9JT"}},
	  "appointment":{"start":"` + start + `","end":"` + end + `","location":"Riverside Medical Practice"}}`
	req, _ := http.NewRequest(http.MethodPost, "https://"+bound.Notices+"/v1/notices", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok[1])
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST over HTTPS: %v\n%s", err, srv.log())
	}
	var view struct{ Status string }
	json.NewDecoder(resp.Body).Decode(&view)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || view.Status != "letter-queued" {
		t.Fatalf("POST = %s %+v, want 201 letter-queued", resp.Status, view)
	}
	if out := runBin(t, bin, "notices", "-c", cliPath, "letters"); !strings.Contains(out, "E2E-1") {
		t.Fatalf("letters: %s", out)
	}
	// Without a token: 401; the admin routes are not on this listener.
	for path, want := range map[string]int{"/v1/notices/E2E-1": http.StatusUnauthorized, "/v1/letters": http.StatusNotFound} {
		resp, err = client.Get("https://" + bound.Notices + path)
		if err != nil || resp.StatusCode != want {
			t.Fatalf("GET %s on the notices listener: %v %v, want %d", path, resp.Status, err, want)
		}
		resp.Body.Close()
	}
	if !bytes.Contains([]byte(readFile(t, filepath.Join(dir, "data", "audit.log"))), []byte("notice.accepted")) {
		t.Error("audit log has no notice.accepted event")
	}
}
