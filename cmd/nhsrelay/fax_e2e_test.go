package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const (
	faxEndpoint = "fax.a81001@nhs.example"
	faxNumber   = "+441632960001"
)

// TestFaxEndToEnd runs the real binary with the fax bridge on and feeds
// it a fax through each intake, as the fax servers would: T.37 mail over
// SMTP (swaks), the HylaFAX faxrcvd hook (the binary), a file dropped into
// the watched spool folder, and an HTTP upload; each ends in the
// endpoint's Maildir. An unroutable fax becomes a dead letter that the
// CLI re-routes, and the report names the senders.
func TestFaxEndToEnd(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "run")
	runBin(t, bin, "init", dir)
	cfgPath := filepath.Join(dir, "nhsrelay.toml")
	text := readFile(t, cfgPath)
	for _, key := range []string{"submission_listen", "submissions_listen", "mx_listen", "listen"} {
		var ok bool
		if text, ok = setKey(text, key, `"127.0.0.1:0"`); !ok {
			t.Fatalf("config has no %s", key)
		}
	}
	spoolDir := filepath.Join(dir, "faxin")
	if i := strings.Index(text, "\n[fax]\n"); i >= 0 { // the generated [fax] table (off): ours replaces it
		rest := text[i+1:]
		end := strings.Index(rest, "\n[")
		if end < 0 {
			end = len(rest)
		}
		text = text[:i] + rest[end:]
	}
	text += "\n[fax]\nenabled = true\nfrom = \"fax-bridge@relay.nhs.example\"\naccount = \"" + sampleSenderUser + "\"\nt37_domain = \"fax.nhsrelay.test\"\nt37_gateways = [\"127.0.0.1\"]\nspool_dir = " + strconv.Quote(spoolDir) +
		"\nspool_rescan = \"1s\"\nupload_listen = \"127.0.0.1:0\"\nupload_max_bytes = 1048576\nhylafax_did_callid = 3\n"
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	// The endpoint is hosted here: the relay decrypts for it with its key.
	keyPrefix := filepath.Join(dir, "keys", faxEndpoint)
	runBin(t, bin, "certs", "issue", "--smime", faxEndpoint, "--ca", filepath.Join(dir, "ca"), "--out", keyPrefix)
	srv := startServe(t, bin, cfgPath)
	bound := srv.listeners(t, filepath.Join(dir, "data", "listeners.json"))
	srv.waitReady(t, "http://"+bound.Admin+"/healthz")
	cli := filepath.Join(dir, "cli.toml")
	os.WriteFile(cli, []byte(text+"\n"), 0o600)
	cliText, _ := setKey(text, "listen", strconv.Quote(bound.Admin))
	os.WriteFile(cli, []byte(cliText), 0o600)

	runBin(t, bin, "directory", "-c", cli, "add", "-ods", "A81001", "-hop", "hosted", "-fax", "01632 960001",
		"-cert", keyPrefix+".crt", faxEndpoint)
	runBin(t, bin, "directory", "-c", cli, "verify", "-attest", "fax e2e test", faxEndpoint)

	// 1. T.37 over SMTP, STARTTLS on the MX listener.
	caFile := filepath.Join(dir, "ca", "ca.crt")
	out, err := exec.Command("swaks", "--tls-ca-path", caFile, "--timeout", "20", "--server", bound.MX, "--tls",
		"--from", "gateway@fax.riverside-hospital.nhs.test", "--to", "FAX="+faxNumber+"@fax.nhsrelay.test",
		"--data", "@testdata/fax/t37-simple-mode.eml").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "250 2.0.0 fax received, reference FX-") {
		t.Fatalf("swaks T.37: %v\n%s\n%s", err, out, srv.log())
	}

	// 2. The HylaFAX hook: qfile, devid, commid, reason, then caller IDs
	// (number, name, DID as CallIDPattern orders them here).
	qfile := filepath.Join(t.TempDir(), "fax00001.tif")
	os.WriteFile(qfile, readFileBytes(t, "testdata/fax/g3-2d-normal.tif"), 0o600)
	runBin(t, bin, "fax", "-c", cfgPath, "ingest", "--hylafax", qfile, "ttyS0", "000000123", "", "+441632960222", "WARD 9", "01632960001")
	if _, err := os.Stat(qfile); err != nil {
		t.Errorf("the hook removed HylaFAX's file: %v", err)
	}
	// A failed reception (no file, a reason) is recorded, not an error.
	runBin(t, bin, "fax", "-c", cfgPath, "ingest", "--hylafax", filepath.Join(t.TempDir(), "missing.tif"), "ttyS0", "000000125",
		"No carrier detected", "+441632960666", "", "01632960001")
	// A hook that cannot store exits non-zero and leaves the file.
	broken := strings.Replace(text, strconv.Quote(spoolDir), strconv.Quote(qfile+"/x"), 1)
	brokenPath := filepath.Join(dir, "broken.toml")
	os.WriteFile(brokenPath, []byte(broken), 0o600)
	if out, err := exec.Command(bin, "fax", "-c", brokenPath, "ingest", "--hylafax", qfile, "ttyS0", "124", "").CombinedOutput(); err == nil {
		t.Errorf("ingest into an unusable spool folder succeeded:\n%s", out)
	}
	if _, err := os.Stat(qfile); err != nil {
		t.Errorf("a failed hook removed HylaFAX's file: %v", err)
	}

	// 3. The spool folder: a fax and its sidecar; and one for a number
	// nobody owns, which becomes a dead letter.
	writeDrop := func(name, tif, sidecar string) {
		os.WriteFile(filepath.Join(spoolDir, "."+name+".json"), []byte(sidecar), 0o600)
		os.Rename(filepath.Join(spoolDir, "."+name+".json"), filepath.Join(spoolDir, name+".json"))
		os.WriteFile(filepath.Join(spoolDir, "."+name+".tif"), readFileBytes(t, tif), 0o600)
		os.Rename(filepath.Join(spoolDir, "."+name+".tif"), filepath.Join(spoolDir, name+".tif"))
	}
	writeDrop("scan1", "testdata/fax/g3-2d-3pages-lsb2msb.tif", `{"called":"01632 960001","calling":"+441632960333"}`)
	writeDrop("lost", "testdata/fax/g4-fine.tif", `{"called":"+441632960999","calling":"+441632960444"}`)

	// 4. HTTP upload with a fax server credential made by the CLI.
	addOut := runBin(t, bin, "fax", "-c", cli, "server", "add", "scanner-1")
	token := regexp.MustCompile(`(?m)^scanner-1\.\S+$`).FindString(addOut)
	if token == "" {
		t.Fatalf("fax server add printed no token:\n%s", addOut)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(readFileBytes(t, caFile))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("called", faxNumber)
	mw.WriteField("calling", "+441632960555")
	fw, _ := mw.CreateFormFile("file", "scan.tif")
	fw.Write(readFileBytes(t, "testdata/fax/g4-fine.tif"))
	mw.Close()
	req, _ := http.NewRequest("POST", "https://"+bound.FaxUpload+"/v1/faxes", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	var up map[string]any
	json.NewDecoder(resp.Body).Decode(&up)
	resp.Body.Close()
	if resp.StatusCode != 202 || up["outcome"] != "delivered" {
		t.Fatalf("upload: %d %v", resp.StatusCode, up)
	}

	maildir := filepath.Join(dir, "data", "maildir", faxEndpoint, "new")
	subjects := []string{"Fax from +441632960777 (3 pages)", "Fax from +441632960222 (1 page)",
		"Fax from +441632960333 (3 pages)", "Fax from +441632960555 (1 page)"}
	if !waitFor(func() bool {
		for _, s := range subjects {
			if !dirContains(maildir, "Subject: "+s) {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("the Maildir lacks one of %q\nserver log:\n%s", subjects, srv.log())
	}

	if !waitFor(func() bool {
		m, _ := filepath.Glob(filepath.Join(spoolDir, "done", "*-hylafax-ttyS0-000000125.json"))
		return len(m) == 1
	}) {
		t.Errorf("the failed reception was not recorded\n%s", srv.log())
	}

	// 5. The dead letter, listed and re-routed by hand.
	var ref string
	if !waitFor(func() bool {
		out := runBin(t, bin, "fax", "-c", cli, "deadletter", "list")
		ref = regexp.MustCompile(`FX-\S+`).FindString(out)
		return ref != "" && strings.Contains(out, "no endpoint in the directory owns fax number +441632960999")
	}) {
		t.Fatalf("no dead letter listed\n%s", srv.log())
	}
	runBin(t, bin, "fax", "-c", cli, "deadletter", "reroute", ref, "-to", faxEndpoint)
	if !waitFor(func() bool { return dirContains(maildir, "Subject: Fax from +441632960444 (1 page)") }) {
		t.Fatalf("the re-routed fax did not arrive\n%s", srv.log())
	}

	// 6. Who still faxes.
	csv := runBin(t, bin, "fax", "-c", cli, "report", "-csv")
	for _, s := range []string{"+441632960777", "+441632960222", "+441632960333", "+441632960555", "+441632960444"} {
		if !strings.Contains(csv, "\n"+s+",") {
			t.Errorf("report lacks %s:\n%s", s, csv)
		}
	}
}

func readFileBytes(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
