package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nhsrelay/certs"
	"nhsrelay/directory"
	"nhsrelay/directory/boltstore"
)

// TestInit checks what init leaves behind: a config that validates with the
// development ports, and a sample directory whose policy answers as the
// README says.
func TestInit(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	l := newInitLayout(dir)
	s, err := writeInit(t.Context(), l, initOptions{hostname: "localhost"})
	if err != nil {
		t.Fatalf("writeInit: %v", err)
	}
	cfg, err := loadConfig(l.config)
	if err != nil {
		t.Fatalf("init's config does not load: %v", err)
	}
	if cfg.SubmissionListen != devSubmission || cfg.AdminListen != devAdmin || cfg.MXListen != devMX {
		t.Errorf("listeners = %s %s %s, want the development ports", cfg.SubmissionListen, cfg.MXListen, cfg.AdminListen)
	}
	if len(s.password) < 20 || !strings.Contains(swaksLine("2587", "ca.crt", s), "--auth-password "+s.password) {
		t.Errorf("password %q or swaks line wrong: %s", s.password, swaksLine("2587", "ca.crt", s))
	}
	if _, err := certs.LoadKeyPair(cfg.CertFile, cfg.KeyFile); err != nil {
		t.Errorf("TLS pair: %v", err)
	}

	d := openInitDirectory(t, cfg)
	for _, addr := range []string{sampleSender, sampleRecipient} {
		e, err := d.CheckRecipient(t.Context(), addr)
		if err != nil {
			t.Errorf("CheckRecipient(%s) = %v, want verified", addr, err)
			continue
		}
		if !e.Hosted() || len(e.Certificates) != 1 {
			t.Errorf("%s: hosted %v, %d certificates; want hosted with one", addr, e.Hosted(), len(e.Certificates))
		}
		if _, err := os.Stat(filepath.Join(l.keysDir, addr+".key")); err != nil {
			t.Errorf("S/MIME key for %s: %v", addr, err)
		}
	}
	for addr, want := range map[string]directory.EndpointStatus{
		"admin.b82005@hillside.nhs.example":    directory.StatusPending,
		"dispensary.fa123@harbour.nhs.example": directory.StatusSuspended,
	} {
		_, err := d.CheckRecipient(t.Context(), addr)
		var nv *directory.NotVerifiedError
		if !errors.As(err, &nv) || nv.Status != want {
			t.Errorf("CheckRecipient(%s) = %v, want NotVerifiedError %s", addr, err, want)
		}
	}
	if _, err := d.CheckRecipient(t.Context(), "nobody@nhs.example"); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("CheckRecipient(unknown) = %v, want ErrNotFound", err)
	}
	a, err := d.Authenticate(t.Context(), s.user, s.password)
	if err != nil || !a.Owns(sampleSender) {
		t.Errorf("Authenticate(printed password) = %+v, %v; want the account owning %s", a, err, sampleSender)
	}
	if _, err := d.Authenticate(t.Context(), s.user, s.password+"x"); !errors.Is(err, directory.ErrAuthFailed) {
		t.Errorf("Authenticate(wrong password) = %v, want ErrAuthFailed", err)
	}

	// A second init into the same folder refuses, naming the config.
	if err := runInit([]string{dir}); err == nil || !strings.Contains(err.Error(), "nhsrelay.toml exists") {
		t.Errorf("second init = %v, want a refusal naming nhsrelay.toml", err)
	}
}

func TestSetKey(t *testing.T) {
	t.Parallel()
	in := "[a]\n# listen = \"x\"\nlisten = \"1\"\n  submission_listen = \"2\"\nlisten = \"3\"\n"
	got, ok := setKey(in, "listen", `"9"`)
	want := "[a]\n# listen = \"x\"\nlisten = \"9\"\n  submission_listen = \"2\"\nlisten = \"3\"\n"
	if !ok || got != want {
		t.Errorf("setKey(listen) = %q, %v; want %q", got, ok, want)
	}
	got, ok = setKey(in, "submission_listen", `"8"`)
	if !ok || !strings.Contains(got, "  submission_listen = \"8\"\n") {
		t.Errorf("setKey(submission_listen) = %q, %v", got, ok)
	}
	if _, ok := setKey(in, "missing", "1"); ok {
		t.Errorf("setKey(missing) ok = true")
	}
}

// TestInitTwoInstances: two instances made with -ods, -domain and -ports
// share no CA name, hosted address, relay_ods or listener port, and
// -ca-name names the CA as asked.
func TestInitTwoInstances(t *testing.T) {
	t.Parallel()
	type made struct {
		cfg    *config
		caName string
		s      initSummary
	}
	mk := func(o initOptions) made {
		dir := filepath.Join(t.TempDir(), "run")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		l := newInitLayout(dir)
		s, err := writeInit(t.Context(), l, o)
		if err != nil {
			t.Fatalf("writeInit(%+v): %v", o, err)
		}
		cfg, err := loadConfig(l.config)
		if err != nil {
			t.Fatalf("config: %v", err)
		}
		ca, err := certs.LoadCA(l.caDir)
		if err != nil {
			t.Fatal(err)
		}
		return made{cfg, ca.Cert.Subject.CommonName, s}
	}
	a := mk(initOptions{hostname: "localhost"})
	b := mk(initOptions{hostname: "localhost", ods: "y12345", domain: "b.nhs.example", ports: "3587"})
	c := mk(initOptions{hostname: "localhost", caName: "Test CA C", ports: "0"})
	if a.caName == b.caName || !strings.Contains(a.caName, "localhost") {
		t.Errorf("CA names %q and %q: want unique names carrying the host name", a.caName, b.caName)
	}
	if c.caName != "Test CA C" {
		t.Errorf("-ca-name: CA named %q, want %q", c.caName, "Test CA C")
	}
	if b.cfg.RelayODS != "Y12345" || a.cfg.RelayODS != sampleRelayODS {
		t.Errorf("relay_ods = %q and %q, want %s and Y12345", a.cfg.RelayODS, b.cfg.RelayODS, sampleRelayODS)
	}
	if b.s.from != "reception.y12345@b.nhs.example" || b.s.to != "referrals.y12345@b.nhs.example" || b.s.user != "y12345" {
		t.Errorf("second instance sample = %s → %s as %s", b.s.from, b.s.to, b.s.user)
	}
	got := []string{b.cfg.SubmissionListen, b.cfg.SubmissionsListen, b.cfg.MXListen, b.cfg.AdminListen}
	want := []string{"127.0.0.1:3587", "127.0.0.1:3588", "127.0.0.1:3589", "127.0.0.1:3590"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("-ports 3587: listeners %v, want %v", got, want)
	}
	if c.cfg.MXListen != "127.0.0.1:0" || c.cfg.AdminListen != "127.0.0.1:0" {
		t.Errorf("-ports 0: listeners %s %s, want kernel-chosen", c.cfg.MXListen, c.cfg.AdminListen)
	}
	// The second instance's directory hosts only its own addresses.
	d := openInitDirectory(t, b.cfg)
	for _, addr := range []string{sampleSender, sampleRecipient} {
		if _, err := d.CheckRecipient(t.Context(), addr); !errors.Is(err, directory.ErrNotFound) {
			t.Errorf("second instance CheckRecipient(%s) = %v, want not found", addr, err)
		}
	}
	if _, err := d.CheckRecipient(t.Context(), b.s.to); err != nil {
		t.Errorf("second instance CheckRecipient(%s) = %v", b.s.to, err)
	}
	for _, bad := range []initOptions{{hostname: "localhost", ods: "a"}, {hostname: "localhost", domain: "nodot"},
		{hostname: "localhost", ports: "80"}, {hostname: "localhost", ports: "x"}} {
		if err := bad.check(); err == nil {
			t.Errorf("check(%+v) = nil, want a refusal", bad)
		}
	}
}

// openInitDirectory opens the directory init wrote for cfg, closed when
// the test ends.
func openInitDirectory(t *testing.T, cfg *config) *directory.Directory {
	t.Helper()
	store, err := boltstore.Open(cfg.DirectoryDB())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	d, err := directory.Open(t.Context(), directory.Config{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	return d
}
