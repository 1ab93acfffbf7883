package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"nhsrelay/certs"
)

// After a key rollover (a second pair for a hosted address in
// smime.keys_dir/<address>/), certs status -c names the newer pair as the
// current one and the old as older (decrypt only).
func TestCertsStatusShowsCurrentKey(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "inst")
	if err := runInit([]string{dir}); err != nil {
		t.Fatal(err)
	}
	ca, err := certs.LoadCA(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	ca.NotBefore = time.Now().Add(-time.Minute) // newer than init's pair (five minutes back)
	certPEM, keyPEM, err := ca.IssueSMIME(sampleRecipient)
	if err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "keys", sampleRecipient)
	if err := os.MkdirAll(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, err := certs.WritePair(filepath.Join(sub, "renewed"), certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := certsMain([]string{"status", "-c", filepath.Join(dir, "nhsrelay.toml")}, &out, time.Now); err != nil {
		t.Fatalf("status -c: %v\n%s", err, out.String())
	}
	for _, re := range []string{
		regexp.QuoteMeta(filepath.Join(sub, "renewed.crt")) + `\s+\S+\s+smime-endpoint\s`,
		regexp.QuoteMeta(filepath.Join(dir, "keys", sampleRecipient+".crt")) + `\s+\S+\s+smime-endpoint-older\s`,
	} {
		if !regexp.MustCompile(re).MatchString(out.String()) {
			t.Errorf("status -c does not match %s:\n%s", re, out.String())
		}
	}
}
