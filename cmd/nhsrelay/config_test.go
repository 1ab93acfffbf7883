package main

import (
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"nhsrelay/certs/certstest"
)

// writeConfigDir writes text as nhsrelay.toml into a new folder together
// with the files the example config names, and returns the config's path.
// The S/MIME files hold what they say, since the config reads them:
// smime-anchors.pem a CA, ca.crl that CA's CRL, and other-ca.pem another
// CA, not an anchor.
func writeConfigDir(t testing.TB, text string) string {
	t.Helper()
	dir := t.TempDir()
	ca, other := certstest.NewCA(t), certstest.NewCA(t)
	pemCert := func(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}) }
	files := map[string]struct {
		mode os.FileMode
		data []byte
	}{
		"tls/server.crt":    {0o644, nil},
		"tls/server.key":    {0o600, nil},
		"spool.key":         {0o600, nil},
		"admin.token":       {0o600, nil},
		"smime-anchors.pem": {0o644, pemCert(ca.Cert.Raw)},
		"other-ca.pem":      {0o644, pemCert(other.Cert.Raw)},
		"ca.crl":            {0o644, ca.CRL(t, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))},
		"keys/.keep":        {0o600, nil},
	}
	for name, f := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if f.data == nil {
			f.data = []byte("0123456789abcdef0123456789abcdef\n")
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "nhsrelay.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExampleConfigValid(t *testing.T) {
	t.Parallel()
	path := writeConfigDir(t, exampleConfig)
	c, err := loadConfig(path)
	if err != nil {
		t.Fatalf("loadConfig(example) = %v", err)
	}
	dir := filepath.Dir(path)
	checks := []struct {
		name      string
		got, want any
	}{
		{"DataDir", c.DataDir, filepath.Join(dir, "data")},
		{"CertFile", c.CertFile, filepath.Join(dir, "tls/server.crt")},
		{"MaildirRoot", c.MaildirRoot, filepath.Join(dir, "data", "maildir")},
		{"SubmissionListen", c.SubmissionListen, ":587"},
		{"AdminListen", c.AdminListen, "127.0.0.1:8025"},
		{"DelayWarnAfter", c.DelayWarnAfter, 4 * time.Hour},
		{"GiveUpAfter", c.GiveUpAfter, 120 * time.Hour},
		{"MaxMessageBytes", c.MaxMessageBytes, int64(50 << 20)},
		{"MaxRecipients", c.MaxRecipients, 1000},
		{"ChallengeFrom", c.ChallengeFrom, "verify@relay.nhs.example"},
		{"TrustedNetworks", len(c.TrustedNetworks), 0},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("example %s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

// TestExampleMatchesDefaults: the example documents every key with the
// value a file that leaves it out gets, so both must decode alike.
func TestExampleMatchesDefaults(t *testing.T) {
	t.Parallel()
	full, err := loadConfig(writeConfigDir(t, exampleConfig))
	if err != nil {
		t.Fatal(err)
	}
	minimal := `[server]
hostname = "relay.nhs.example"
[tls]
cert_file = "tls/server.crt"
key_file = "tls/server.key"
[smime]
trust_anchors = ["smime-anchors.pem"]
`
	short, err := loadConfig(writeConfigDir(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	// Paths differ by folder; compare with them made relative.
	for _, c := range []*config{full, short} {
		dir := filepath.Dir(c.Path)
		for _, p := range []*string{&c.Path, &c.DataDir, &c.CertFile, &c.KeyFile, &c.SpoolKeyFile, &c.MaildirRoot, &c.AdminTokenFile, &c.SMIMEKeysDir} {
			*p = strings.TrimPrefix(*p, dir)
		}
	}
	if f, s := full.LogFormat, short.LogFormat; f != s {
		t.Errorf("log_format: example %q, default %q", f, s)
	}
	fs, ss := *full, *short
	fs.TrustedNetworks, ss.TrustedNetworks = nil, nil
	fs.CAFiles, ss.CAFiles = nil, nil
	fs.SMIMETrustAnchors, ss.SMIMETrustAnchors = nil, nil
	if fmtConfig(fs) != fmtConfig(ss) {
		t.Errorf("example and defaults differ:\nexample  %s\ndefaults %s", fmtConfig(fs), fmtConfig(ss))
	}
}

func fmtConfig(c config) string { return fmt.Sprintf("%+v", c) }

func TestBadConfigs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(string) string // applied to the example
		want []string            // every one must appear in the error
	}{
		{"unknown key", add("[smtp]", "max_mesage_bytes = 10"), []string{"smtp.max_mesage_bytes: unknown key"}},
		{"unknown section", func(s string) string { return s + "\n[smptd]\nlisten = \":25\"\n" }, []string{"smptd", "unknown key"}},
		{"missing cert", set("cert_file", `"tls/nope.pem"`), []string{"tls.cert_file: no such file"}},
		{"key readable by others", nil, []string{"tls.key_file:", "chmod 600"}},
		{"bad duration", set("delay_warn_after", `"4 hours"`), []string{"relay.delay_warn_after:", "not a duration"}},
		{"give up before warn", set("give_up_after", `"1h"`), []string{"relay.give_up_after: 1h must be longer"}},
		{"retry max below min", set("retry_max", `"10s"`), []string{"relay.retry_max: 10s is less than"}},
		{"admin on all interfaces", set("listen", `":8025"`), []string{"admin.listen:", "not a loopback"}},
		{"admin public allowed", chain(set("listen", `"0.0.0.0:8025"`), set("allow_non_loopback", "true")), nil},
		{"bad listen", set("mx_listen", `"25"`), []string{"smtp.mx_listen:", "not host:port"}},
		{"listen on a name", set("mx_listen", `"mail.example:25"`), []string{"smtp.mx_listen:", "IP address"}},
		{"bad port", set("submission_listen", `":70000"`), []string{"smtp.submission_listen: port"}},
		{"all listeners off", chain(set("submission_listen", `""`), set("submissions_listen", `""`), set("mx_listen", `""`)), []string{"smtp: every listener is disabled"}},
		{"open relay", set("trusted_networks", `["0.0.0.0/0"]`), []string{"smtp.trusted_networks[0]:", "open relay"}},
		{"bad network", set("trusted_networks", `["127.0.0.1", "10.0.0.0/33"]`), []string{"smtp.trusted_networks[1]:"}},
		{"zero limit", set("max_recipients", "0"), []string{"smtp.max_recipients: must be greater than 0"}},
		{"negative size", set("max_message_bytes", "-1"), []string{"smtp.max_message_bytes: must be greater than 0"}},
		{"per-IP above total", set("max_conns_per_ip", "5000"), []string{"smtp.max_conns_per_ip: 5000 is more than smtp.max_conns"}},
		{"log format", set("log_format", `"xml"`), []string{"server.log_format:"}},
		{"log level", set("log_level", `"loud"`), []string{"server.log_level:"}},
		{"hostname", set("hostname", `"relay nhs"`), []string{"server.hostname:"}},
		{"challenge from default needs a domain", set("hostname", `"localhost"`), []string{"directory.challenge_from: not set, and the default"}},
		{"challenge from", set("challenge_from", `"postmaster"`), []string{"directory.challenge_from:"}},
		{"warn after expiry", set("warn_before", `"9000h"`), []string{"directory.warn_before:"}},
		{"redis scheme", set("url", `"http://127.0.0.1:6379"`), []string{"redis.url:", "rediss://"}},
		{"redis database", set("url", `"redis://127.0.0.1:6379/x"`), []string{"redis.url:"}},
		{"bad duration reported once", set("give_up_after", `"2 days"`), []string{"relay.give_up_after: \"2 days\" is not a duration"}},
		{"wrong type", set("max_errors", `"twenty"`), []string{"max_errors"}},
		{"wrong types reported together", chain(set("max_errors", `"twenty"`), set("hop_concurrency", `"ten"`),
			set("log_level", "3"), set("trusted_networks", `"127.0.0.1"`)),
			[]string{"smtp.max_errors: wrong type: want a whole number", "relay.hop_concurrency: wrong type",
				"server.log_level: wrong type: want a string", "smtp.trusted_networks: wrong type: want a list"}},
		{"wrong type beside other problems", chain(set("max_errors", `"twenty"`), set("retry_min", `"x"`)),
			[]string{"smtp.max_errors: wrong type", "relay.retry_min:"}},
		{"a table that is a value", func(s string) string { return "relay = 3\n" + s }, []string{"relay"}},
		// smtpd refuses it in EHLO and at start-up; check-config says so first.
		{"hostname with a trailing dot", set("hostname", `"relay.nhs.example."`), []string{"server.hostname:", "not a host name"}},
		{"no trust anchors", set("trust_anchors", "[]"), []string{"smime.trust_anchors: must list at least one"}},
		{"missing anchor file", set("trust_anchors", `["nope.pem"]`), []string{"smime.trust_anchors[0]: no such file"}},
		{"anchor file without a certificate", set("trust_anchors", `["spool.key"]`), []string{"smime.trust_anchors[0]:", "no CERTIFICATE"}},
		{"organisation CA among the anchors", set("org_cas", `["smime-anchors.pem"]`), nil},
		{"missing organisation CA file", set("org_cas", `["nope.pem"]`), []string{"smime.org_cas[0]: no such file"}},
		{"organisation CA not an anchor", set("org_cas", `["smime-anchors.pem", "other-ca.pem"]`),
			[]string{"smime.org_cas[1]: the CA", "is not among smime.trust_anchors; an organisation CA must also be a trust anchor"}},
		{"CRL", set("crls", `["ca.crl"]`), nil},
		{"missing CRL file", set("crls", `["ca.crl", "nope.crl"]`), []string{"smime.crls[1]: no such file"}},
		{"CRL that does not parse", set("crls", `["spool.key"]`), []string{"smime.crls[0]:", "CRL"}},
		{"missing keys dir", set("keys_dir", `"nokeys"`), []string{"smime.keys_dir: no such folder"}},
		{"bad relay ods", set("relay_ods", `"a@b"`), []string{"smime.relay_ods:"}},
		{"login cache too long", set("auth_cache_ttl", `"2h"`), []string{"directory.auth_cache_ttl: 2h is above the maximum 1h"}},
		{"login cache off", set("auth_cache_ttl", `"0s"`), nil},
		// [federation], federation_config.go
		{"FHIR listener with its token", chain(set("fhir_listen", `"127.0.0.1:2443"`), set("fhir_token_file", `"admin.token"`)), nil},
		{"FHIR listener without a token", set("fhir_listen", `"127.0.0.1:2443"`), []string{"federation.fhir_token_file: must be set with federation.fhir_listen"}},
		{"missing FHIR token file", set("fhir_token_file", `"nope.token"`), []string{"federation.fhir_token_file: no such file"}},
		{"bad published MX", set("publish_mx", `"mx.example"`), []string{"federation.publish_mx:", "not host:port"}},
		{"peer sync too often", set("peer_sync_interval", `"10ms"`), []string{"federation.peer_sync_interval: 10ms is below the minimum"}},
		{"several problems joined", chain(set("log_level", `"loud"`), set("retry_min", `"x"`), set("cert_file", `""`)),
			[]string{"server.log_level:", "relay.retry_min:", "tls.cert_file: must be set"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			text := exampleConfig
			if tc.edit != nil {
				text = tc.edit(text)
			}
			path := writeConfigDir(t, text)
			if tc.name == "key readable by others" {
				if err := os.Chmod(filepath.Join(filepath.Dir(path), "tls/server.key"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := loadConfig(path)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("loadConfig = %v, want no error", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("loadConfig = nil, want an error containing %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("loadConfig error = %q, want it to contain %q", err, w)
				}
			}
			if n := len(unjoin(err)); n > len(tc.want) {
				t.Errorf("loadConfig reported %d problems, want %d: %v", n, len(tc.want), err)
			}
		})
	}
}

// set replaces the value of the first line "key = ..." of the example.
func set(key, value string) func(string) string {
	return func(s string) string {
		out, ok := setKey(s, key, value)
		if !ok {
			panic("example has no key " + key)
		}
		return out
	}
}

// add inserts line after the section header.
func add(section, line string) func(string) string {
	return func(s string) string { return strings.Replace(s, section+"\n", section+"\n"+line+"\n", 1) }
}

func chain(fs ...func(string) string) func(string) string {
	return func(s string) string {
		for _, f := range fs {
			s = f(s)
		}
		return s
	}
}

// FuzzParseConfig: any text either fails cleanly or yields a config whose
// limits are all usable.
func FuzzParseConfig(f *testing.F) {
	f.Add(exampleConfig)
	f.Add("")
	f.Add("[smtp]\nmax_recipients = -1\n")
	f.Add("[admin]\nlisten = \"[::1]:8025\"\n")
	f.Add("[smtp]\ntrusted_networks = [\"::/0\", \"fe80::1%eth0\"]\n")
	f.Add("[relay]\nretry_min = \"-5s\"\ngive_up_after = \"9999999999h\"\n")
	f.Add("[[server]]\n")
	f.Add("server = 1\n")
	dir := writeConfigDir(f, exampleConfig)
	f.Fuzz(func(t *testing.T, text string) {
		c, err := parseConfig(dir, text)
		if err != nil {
			return
		}
		if c.MaxMessageBytes <= 0 || c.MaxRecipients <= 0 || c.MaxConns <= 0 || c.RetryMin <= 0 || c.GiveUpAfter <= c.DelayWarnAfter {
			t.Fatalf("accepted a config with an unusable limit: %+v", c)
		}
		for _, p := range c.TrustedNetworks {
			if p.Bits() == 0 {
				t.Fatalf("accepted trusted network %v", p)
			}
		}
	})
}

// TestEveryKeyDocumented: each config field names its key, and the example
// config shows every key.
func TestEveryKeyDocumented(t *testing.T) {
	t.Parallel()
	for _, f := range configFields() {
		key := f.Tag.Get("key")
		if f.Name == "Path" || f.Anonymous { // an embedded table's fields are visited themselves
			continue
		}
		if key == "" {
			t.Errorf("config.%s has no key tag", f.Name)
			continue
		}
		section, name, _ := strings.Cut(key, ".")
		at := strings.Index(exampleConfig, "\n["+section+"]\n")
		if at < 0 || !strings.Contains(exampleConfig[at:], "\n"+name+" = ") {
			t.Errorf("example config does not show %s", key)
		}
	}
}

// configFields are config's fields, and those of a table's own struct
// (config.Fax: faxConfig) in its place.
func configFields() []reflect.StructField {
	var out []reflect.StructField
	ct := reflect.TypeFor[config]()
	for i := range ct.NumField() {
		f := ct.Field(i)
		if f.Tag.Get("key") == "" && f.Type.Kind() == reflect.Struct {
			for j := range f.Type.NumField() {
				out = append(out, f.Type.Field(j))
			}
			continue
		}
		out = append(out, f)
	}
	return out
}

// TestReadmeDocumentsEveryKey keeps the README's configuration reference in
// step with the code.
func TestReadmeDocumentsEveryKey(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range configFields() {
		key := f.Tag.Get("key")
		if key == "" {
			continue
		}
		section, name, _ := strings.Cut(key, ".")
		at := strings.Index(string(readme), "### ["+section+"]")
		if at < 0 || !strings.Contains(string(readme[at:]), "| `"+name+"` |") {
			t.Errorf("README.md does not document %s in its [%s] table", key, section)
		}
	}
}

// check-config runs the packages' own start-up checks (ValidateSettings)
// on the values it built, and names the key of each problem: a value the
// file check let through (here set after it) is still refused, under its
// key, as serve would refuse it.
func TestPackageProblemsNameKeys(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(writeConfigDir(t, exampleConfig))
	if err != nil {
		t.Fatal(err)
	}
	c.Hostname = "relay.nhs.example."
	c.RetryMin, c.RetryMax = time.Hour, time.Minute
	v := &validator{}
	v.packageProblems(c)
	got := map[string]bool{}
	for _, e := range v.errs {
		got[problemKey(e)] = true
	}
	for _, k := range []string{"server.hostname", "relay.retry_max"} {
		if !got[k] {
			t.Errorf("package problems %v do not name %s", v.errs, k)
		}
	}
}
