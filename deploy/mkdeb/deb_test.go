package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDebianPackage builds the package from a freshly built binary, reads
// it back with dpkg-deb, installs it with dpkg into a temporary root (the
// maintainer scripts run there, chrootless, with DPKG_ROOT), checks that
// the installed default config fails only for the certificates the
// operator must supply and passes check-config once they are in place,
// verifies the unit with systemd-analyze, upgrades (the spool key stays)
// and purges (state and spool key stay).
func TestDebianPackage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test installs with dpkg --root, which sets owners: run it as root (make test does, in CI)")
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "nhsrelay")
	gobuild := exec.Command("go", "build", "-o", bin, "./cmd/nhsrelay")
	gobuild.Dir = repo
	if out, err := gobuild.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	deb, err := build(options{bin: bin, repo: repo, version: "1.2.3~test1", arch: "amd64",
		out: filepath.Join(tmp, "nhsrelay.deb"), mtime: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}

	// The control information and the files, as dpkg sees them.
	ctl := run(t, "dpkg-deb", "-I", deb)
	for _, want := range []string{"Package: nhsrelay", "Version: 1.2.3~test1", "Architecture: amd64",
		"Depends: passwd", "Section: mail", " conffiles", " preinst", " postinst", " prerm", " postrm"} {
		if !strings.Contains(ctl, want) {
			t.Errorf("dpkg-deb -I has no %q:\n%s", want, ctl)
		}
	}
	if got := run(t, "dpkg-deb", "-f", deb, "Package"); strings.TrimSpace(got) != "nhsrelay" {
		t.Errorf("Package field = %q", got)
	}
	ctlDir := filepath.Join(tmp, "control")
	run(t, "dpkg-deb", "-e", deb, ctlDir)
	if got := readFile(t, filepath.Join(ctlDir, "conffiles")); strings.TrimSpace(got) != "/etc/nhsrelay/nhsrelay.toml" {
		t.Errorf("conffiles = %q, want the default config only", got)
	}
	list := run(t, "dpkg-deb", "-c", deb)
	for path, mode := range map[string]string{
		"./usr/bin/nhsrelay":                             "-rwxr-xr-x root/root",
		"./usr/lib/systemd/system/nhsrelay.service":      "-rw-r--r-- root/root",
		"./etc/nhsrelay/nhsrelay.toml":                   "-rw-r--r-- root/root",
		"./usr/share/doc/nhsrelay/README.md":             "-rw-r--r-- root/root",
		"./usr/share/doc/nhsrelay/nhsrelay.example.toml": "-rw-r--r-- root/root",
	} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(mode) + `\s.*\s` + regexp.QuoteMeta(path) + `$`).MatchString(list) {
			t.Errorf("dpkg-deb -c: no %s %s in\n%s", mode, path, list)
		}
	}
	if strings.Contains(list, "spool.key") || strings.Contains(list, "admin.token") {
		t.Errorf("the package ships a secret: every install must make its own\n%s", list)
	}

	// Install into a temporary root that has what a Debian system has for
	// the scripts: an empty user database and a dpkg database.
	root := filepath.Join(tmp, "root")
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "etc"} {
		mkdir(t, filepath.Join(root, d))
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available", "etc/passwd", "etc/group", "etc/shadow", "etc/gshadow"} {
		writeFile(t, filepath.Join(root, f), "", 0o600)
	}
	dpkg := func(args ...string) string {
		t.Helper()
		return run(t, "dpkg", append([]string{"--root=" + root, "--force-script-chrootless", "--force-depends"}, args...)...)
	}
	dpkg("-i", deb)
	if !regexp.MustCompile(`(?m)^nhsrelay:x:\d+:\d+:[^:]*:/var/lib/nhsrelay:/usr/sbin/nologin$`).MatchString(readFile(t, filepath.Join(root, "etc/passwd"))) {
		t.Errorf("no system user nhsrelay in the root's passwd:\n%s", readFile(t, filepath.Join(root, "etc/passwd")))
	}
	uid := ownerOf(t, filepath.Join(root, "var/lib/nhsrelay"))
	if uid == 0 {
		t.Error("/var/lib/nhsrelay belongs to root, want the nhsrelay user")
	}
	for path, want := range map[string]os.FileMode{"etc/nhsrelay": 0o750 | os.ModeDir, "etc/nhsrelay/tls": 0o750 | os.ModeDir,
		"etc/nhsrelay/smime/keys": 0o750 | os.ModeDir, "var/lib/nhsrelay": 0o700 | os.ModeDir,
		"etc/nhsrelay/spool.key": 0o600, "etc/nhsrelay/admin.token": 0o600} {
		fi, err := os.Stat(filepath.Join(root, path))
		if err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode(), err, want)
		}
	}
	key := readFile(t, filepath.Join(root, "etc/nhsrelay/spool.key"))
	if len(key) != 32 || ownerOf(t, filepath.Join(root, "etc/nhsrelay/spool.key")) != uid {
		t.Errorf("spool.key: %d bytes, owner %d; want 32 bytes owned by nhsrelay", len(key), ownerOf(t, filepath.Join(root, "etc/nhsrelay/spool.key")))
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/nhsrelay.service")); err != nil {
		t.Errorf("unit not enabled: %v", err)
	}

	// The default config: only the certificates are missing.
	installed := filepath.Join(root, "usr/bin/nhsrelay")
	conf := filepath.Join(root, "etc/nhsrelay/nhsrelay.toml")
	out, err := exec.Command(installed, "check-config", "-c", conf).Output() // problems on stdout
	if err == nil {
		t.Fatalf("check-config passed without certificates:\n%s", out)
	}
	problems := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, p := range problems {
		if !strings.HasPrefix(p, "tls.cert_file: ") && !strings.HasPrefix(p, "tls.key_file: ") && !strings.HasPrefix(p, "smime.trust_anchors[0]: ") {
			t.Errorf("check-config found a problem the operator should not have to fix: %q", p)
		}
	}
	if len(problems) != 3 {
		t.Errorf("check-config before certificates:\n%s\nwant exactly the TLS pair and the S/MIME anchors", out)
	}
	// Fill them in as the README says, with test certificates from a
	// development CA made by the installed binary.
	dev := filepath.Join(tmp, "dev")
	run(t, installed, "init", dev)
	copyFile(t, filepath.Join(dev, "tls/server.crt"), filepath.Join(root, "etc/nhsrelay/tls/fullchain.pem"), 0o644)
	copyFile(t, filepath.Join(dev, "tls/server.key"), filepath.Join(root, "etc/nhsrelay/tls/privkey.pem"), 0o600)
	copyFile(t, filepath.Join(dev, "ca/ca.crt"), filepath.Join(root, "etc/nhsrelay/smime/anchors.pem"), 0o644)
	if out := run(t, installed, "check-config", "-c", conf); !strings.Contains(out, ": ok (hostname relay.nhs.example, data in /var/lib/nhsrelay)") {
		t.Errorf("check-config with certificates = %q", out)
	}

	// The unit, against the units and commands a Debian system with
	// systemd and procps has (copied in from this machine).
	unitDir := filepath.Join(root, "usr/lib/systemd/system")
	for _, pattern := range []string{"/usr/lib/systemd/system/*.target", "/lib/systemd/system/*.target", "/usr/lib/systemd/system/*.slice"} {
		matches, _ := filepath.Glob(pattern)
		for _, m := range matches {
			if _, err := os.Stat(filepath.Join(unitDir, filepath.Base(m))); err != nil {
				copyFile(t, m, filepath.Join(unitDir, filepath.Base(m)), 0o644)
			}
		}
	}
	mkdir(t, filepath.Join(root, "bin"))
	copyFile(t, "/bin/kill", filepath.Join(root, "bin/kill"), 0o755)
	verify := exec.Command("systemd-analyze", "verify", "--root="+root, "/usr/lib/systemd/system/nhsrelay.service")
	verify.Dir = tmp
	if out, err := verify.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	unit := readFile(t, filepath.Join(unitDir, "nhsrelay.service"))
	for _, want := range []string{"User=nhsrelay", "AmbientCapabilities=CAP_NET_BIND_SERVICE", "ProtectSystem=strict",
		"ReadWritePaths=/var/lib/nhsrelay", "ExecReload=/bin/kill -HUP $MAINPID", "ExecStart=/usr/bin/nhsrelay serve -c /etc/nhsrelay/nhsrelay.toml"} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit has no %q", want)
		}
	}

	// Upgrade: the scripts run again; the spool key and token stay.
	token := readFile(t, filepath.Join(root, "etc/nhsrelay/admin.token"))
	dpkg("-i", deb)
	if readFile(t, filepath.Join(root, "etc/nhsrelay/spool.key")) != key || readFile(t, filepath.Join(root, "etc/nhsrelay/admin.token")) != token {
		t.Error("reinstalling replaced the spool key or the admin token")
	}
	// Purge: the binary goes, the state and the spool key stay.
	dpkg("--purge", "nhsrelay")
	if _, err := os.Stat(installed); err == nil {
		t.Error("the binary is still there after purge")
	}
	for _, keep := range []string{"etc/nhsrelay/spool.key", "var/lib/nhsrelay"} {
		if _, err := os.Stat(filepath.Join(root, keep)); err != nil {
			t.Errorf("purge removed %s: %v", keep, err)
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, &stdout, &stderr)
	}
	return stdout.String()
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, p, s string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), mode); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	writeFile(t, to, readFile(t, from), mode)
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}
