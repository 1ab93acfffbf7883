package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"nhsrelay/notices/dkim"
)

// keygen's key signs a message that python3-dkim verifies against the
// TXT record keygen printed.
func TestDKIMKeygen(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"rsa", "ed25519"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			keyFile := filepath.Join(dir, "k.key")
			var out bytes.Buffer
			if err := dkimMain([]string{"keygen", "-type", kind, "-o", keyFile, "Riverside.nhs.example", "sel1"}, &out); err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("key file: %v %v, want mode 0600", fi, err)
			}
			if err := dkimMain([]string{"keygen", "-o", keyFile, "riverside.nhs.example", "sel1"}, &out); err == nil {
				t.Fatal("keygen overwrote an existing key file")
			}
			m := regexp.MustCompile(`(?m)^sel1\._domainkey\.riverside\.nhs\.example\. IN TXT (.*)$`).FindStringSubmatch(out.String())
			if m == nil {
				t.Fatalf("no TXT record line in:\n%s", out.String())
			}
			txt := strings.ReplaceAll(strings.ReplaceAll(m[1], `" "`, ""), `"`, "")
			k, err := dkim.LoadKey(keyFile)
			if err != nil {
				t.Fatal(err)
			}
			s, _ := dkim.New([]dkim.Key{{Domain: "riverside.nhs.example", Selector: "sel1", Signer: k}})
			var signed bytes.Buffer
			msg := "From: Riverside <appointments@riverside.nhs.example>\r\nTo: ada@example.org\r\nSubject: Your appointment\r\nDate: Mon, 01 Mar 2027 09:00:00 +0000\r\nMessage-ID: <1@x>\r\n\r\nHello\r\n"
			if err := s.SignBytes(&signed, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			txtFile := filepath.Join(dir, "txt")
			os.WriteFile(txtFile, []byte(txt), 0o600)
			cmd := exec.Command("/usr/bin/python3", "../../notices/testdata/dkimcheck.py", txtFile)
			cmd.Stdin = &signed
			if res, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("python3-dkim: %v: %s", err, res)
			}
		})
	}
}
