package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nhsrelay/notices/dkim"
)

func TestNoticesConfig(t *testing.T) {
	t.Parallel()
	text := strings.Replace(exampleConfig, "[notices]\n", "[notices]\nhttp_listen = \"127.0.0.1:0\"\n", 1)
	text = strings.Replace(text, "\nhttp_listen = \"\"\n# From:", "\n# From:", 1)
	text = strings.Replace(text, "\ndkim = []\n", "\ndkim = [{domain = \"Riverside.nhs.example\", selector = \"s1\", key_file = \"dkim.key\"}]\n", 1)
	text = strings.Replace(text, "\norganisation = []\n", "\norganisation = [{ods = \"a81001\", from = \"appointments@riverside.nhs.example\", window = \"08:00-20:00\"}]\n", 1)
	path := writeConfigDir(t, text)
	k, _ := dkim.GenerateKey("ed25519")
	pemKey, _ := dkim.MarshalKey(k)
	if err := os.WriteFile(filepath.Join(filepath.Dir(path), "dkim.key"), pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig(path)
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	n := c.Notices
	if n.Listen != "127.0.0.1:0" || len(n.DKIM) != 1 || n.DKIM[0].Domain != "riverside.nhs.example" ||
		n.Orgs["A81001"].Window.String() != "08:00-20:00" || n.RatePerDomain != 600 || !n.MTASTS {
		t.Fatalf("notices config = %+v", n)
	}
	// A listen without a DKIM key, a bad window and a bad cut-off: each named.
	bad := strings.Replace(text, "\ndkim = [{domain = \"Riverside.nhs.example\", selector = \"s1\", key_file = \"dkim.key\"}]\n", "\ndkim = []\n", 1)
	bad = strings.Replace(bad, `window = "08:00-20:00"}`, `window = "8-20"}`, 1)
	bad = strings.Replace(bad, `letter_cutoff = "16:00"`, `letter_cutoff = "teatime"`, 1)
	_, err = loadConfig(writeConfigDir(t, bad))
	for _, key := range []string{"notices.dkim", "notices.organisation[0].window", "notices.letter_cutoff"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("error %v does not name %s", err, key)
		}
	}
}
