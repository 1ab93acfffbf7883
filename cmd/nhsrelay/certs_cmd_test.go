package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nhsrelay/certs"
)

// With -c and no server running, certs status still lists the server's own
// certificates from their files and says what it could not list.
func TestCertsStatusConfig(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "inst")
	if err := runInit([]string{dir}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := certsMain([]string{"status", "-c", filepath.Join(dir, "nhsrelay.toml")}, &out, time.Now)
	if err != nil {
		t.Fatalf("status -c: %v\n%s", err, out.String())
	}
	for _, want := range []string{"tls-server", "smime-organisation", "smime-endpoint", "endpoint certificates not listed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status -c lacks %q:\n%s", want, out.String())
		}
	}
	if err := certsMain([]string{"status", "-c", "x.toml", "a.pem"}, &out, time.Now); err == nil {
		t.Error("status with both -c and files: no error")
	}
}

// TestCertsCommand runs init-ca, issue (TLS and S/MIME) and status as an
// operator would, and checks the files and the words printed.
func TestCertsCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := certsMain(args, &out, time.Now)
		return out.String(), err
	}
	if out, err := run("init-ca", caDir); err != nil || !strings.Contains(out, "created CA") {
		t.Fatalf("init-ca = %q, %v", out, err)
	}
	if _, err := run("init-ca", caDir); err == nil {
		t.Error("second init-ca overwrote the CA")
	}
	tlsOut := filepath.Join(dir, "mx")
	if out, err := run("issue", "--tls", "mx.nhs.test,127.0.0.1", "--ca", caDir, "--out", tlsOut); err != nil || !strings.Contains(out, "issued TLS certificate") {
		t.Fatalf("issue --tls = %q, %v", out, err)
	}
	smimeOut := filepath.Join(dir, "a81001")
	if out, err := run("issue", "--smime", "A81001", "--ca", caDir, "--out", smimeOut); err != nil || !strings.Contains(out, "ODS A81001") {
		t.Fatalf("issue --smime = %q, %v", out, err)
	}
	for _, key := range []string{tlsOut + ".key", smimeOut + ".key", filepath.Join(caDir, "ca.key")} {
		if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", key, fi.Mode().Perm(), err)
		}
	}
	if _, err := certs.LoadKeyPair(smimeOut+".crt", smimeOut+".key"); err != nil {
		t.Errorf("issued S/MIME pair does not load: %v", err)
	}
	out, err := run("status", filepath.Join(caDir, "ca.crt"), tlsOut+".crt", smimeOut+".crt")
	if err != nil || strings.Count(out, " ok\n") != 3 || !strings.Contains(out, "DAYS LEFT") {
		t.Errorf("status = %q, %v; want three ok lines", out, err)
	}
	// A year and a half later the TLS certificate has expired: a warning and exit 1.
	var late bytes.Buffer
	err = certsMain([]string{"status", tlsOut + ".crt"}, &late, func() time.Time { return time.Now().Add(500 * 24 * time.Hour) })
	if err == nil || !strings.Contains(late.String(), "WARNING: EXPIRED on") {
		t.Errorf("late status = %q, %v; want an expiry warning and an error", late.String(), err)
	}
	for _, bad := range [][]string{
		{"issue", "--tls", "x", "--smime", "y", "--ca", caDir, "--out", "z"},
		{"issue", "--tls", "x"},
		{"status"},
		{"frobnicate"},
		{},
	} {
		if _, err := run(bad...); err == nil {
			t.Errorf("certs %q = nil error", bad)
		}
	}
}
