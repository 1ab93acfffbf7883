package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestAccountsEndToEnd is an operator's day with sender accounts: create
// one with the CLI against the running server, send with swaks as it,
// disable it and see the refusal, enable it, change its password (the old
// one fails at once though the server cached the login, the new one works).
func TestAccountsEndToEnd(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "run")
	runBin(t, bin, "init", dir)
	cfgPath := filepath.Join(dir, "nhsrelay.toml")
	useFreePorts(t, cfgPath)
	srv := startServe(t, bin, cfgPath)
	bound := srv.listeners(t, filepath.Join(dir, "data", "listeners.json"))
	srv.waitReady(t, "http://"+bound.Admin+"/healthz")
	// The server's config says port 0; the CLI reads listeners.json for
	// the bound address, as an operator's would.
	account := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"account", "-c", cfgPath}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	mustAccount := func(args ...string) string {
		t.Helper()
		out, err := account("", args...)
		if err != nil {
			t.Fatalf("nhsrelay account %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	pwRE := regexp.MustCompile(`(?m)^password: (\S+)$`)

	out := mustAccount("add", "ward7", "-owns", sampleSender, "-note", "ward 7 PAS", "-receipts", "never")
	pw := pwRE.FindStringSubmatch(out)
	if pw == nil || !strings.Contains(out, "account ward7 added for A81001") {
		t.Fatalf("account add printed:\n%s", out)
	}
	// An address of another organisation is refused, naming it.
	if out, err := account("", "add", "thief", "-org", "A81001", "-owns", sampleRecipient); err == nil ||
		!strings.Contains(out, "endpoint of RX9") {
		t.Fatalf("account add with another organisation's endpoint: %v\n%s", err, out)
	}

	caFile := filepath.Join(dir, "ca", "ca.crt")
	maildir := filepath.Join(dir, "data", "maildir", sampleRecipient, "new")
	// send submits one message as ward7 with password; on success it waits
	// for delivery, on refusal it returns swaks' transcript.
	send := func(password string) (string, error) {
		token := fmt.Sprintf("account-e2e-%d", time.Now().UnixNano())
		out, err := exec.Command("swaks", "--tls-ca-path", caFile, "--timeout", "20", "--server", bound.Submission,
			"--tls", "--tls-verify", "--auth", "PLAIN", "--auth-user", "ward7", "--auth-password", password,
			"--from", sampleSender, "--to", sampleRecipient, "--header", "Subject: account e2e", "--body", token).CombinedOutput()
		if err == nil && !waitFor(func() bool { return dirContains(maildir, token) }) {
			t.Fatalf("message %s accepted but not delivered\n%s", token, srv.log())
		}
		return string(out), err
	}
	if got, err := send(pw[1]); err != nil || !strings.Contains(got, "250 2.0.0") {
		t.Fatalf("swaks as the new account: %v\n%s", err, got)
	}

	mustAccount("disable", "ward7", "-reason", "left the practice")
	got, err := send(pw[1])
	if err == nil || !strings.Contains(got, "535 5.7.13 account ward7 is disabled: left the practice") {
		t.Fatalf("swaks as a disabled account: %v, want 535 5.7.13 with the reason\n%s", err, got)
	}
	if out := mustAccount("show", "ward7"); !strings.Contains(out, "state: disabled") || !strings.Contains(out, "disabled because: left the practice") {
		t.Fatalf("account show:\n%s", out)
	}
	mustAccount("enable", "ward7")
	if got, err := send(pw[1]); err != nil {
		t.Fatalf("swaks after enable: %v\n%s", err, got)
	}

	// A new password: the old one (cached by the last login) fails at once.
	out = mustAccount("passwd", "ward7")
	pw2 := pwRE.FindStringSubmatch(out)
	if pw2 == nil || pw2[1] == pw[1] {
		t.Fatalf("account passwd printed:\n%s", out)
	}
	if got, err := send(pw[1]); err == nil || !strings.Contains(got, "535 5.7.8") {
		t.Fatalf("swaks with the old password: %v, want 535 5.7.8\n%s", err, got)
	}
	if got, err := send(pw2[1]); err != nil {
		t.Fatalf("swaks with the new password: %v\n%s", err, got)
	}
	if out, err := account("my own long password\n", "passwd", "-stdin", "ward7"); err != nil || pwRE.MatchString(out) {
		t.Fatalf("account passwd -stdin: %v\n%s", err, out)
	}
	if got, err := send("my own long password"); err != nil {
		t.Fatalf("swaks with the password from stdin: %v\n%s", err, got)
	}
	if out, err := account("short\n", "passwd", "-stdin", "ward7"); err == nil || !strings.Contains(out, "password") {
		t.Fatalf("account passwd -stdin (too short): %v\n%s", err, out)
	}

	if out := mustAccount("set", "ward7", "-receipts", "always"); !strings.Contains(out, "receipts always, note ward 7 PAS") {
		t.Fatalf("account set:\n%s", out)
	}
	mustAccount("set", "ward7", "-receipts", "never")

	// owns, list, export, delete.
	if out, err := account("", "owns", "ward7", "+"+sampleRecipient); err == nil || !strings.Contains(out, "RX9") {
		t.Fatalf("owns +other organisation's address: %v\n%s", err, out)
	}
	if out, err := account("", "owns", "ward7", "-"+sampleSender); err == nil || !strings.Contains(out, "at least one address") {
		t.Fatalf("owns -last address: %v\n%s", err, out)
	}
	out = mustAccount("list")
	if !regexp.MustCompile(`(?m)^ward7\s+A81001\s+active\s+never\s+`+regexp.QuoteMeta(sampleSender)+`\s+ward 7 PAS$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^riverside\s+A81001\s+active`).MatchString(out) {
		t.Fatalf("account list:\n%s", out)
	}
	exp := runBin(t, bin, "directory", "-c", cfgPath, "export")
	if !strings.Contains(exp, `"username": "ward7"`) || strings.Contains(exp, "$2a$") || strings.Contains(exp, "password_hash") {
		t.Fatalf("directory export has no ward7 or holds a hash:\n%s", exp)
	}
	mustAccount("delete", "ward7")
	if out, err := account("", "show", "ward7"); err == nil || !strings.Contains(out, "no account ward7") {
		t.Fatalf("show after delete: %v\n%s", err, out)
	}

	// Each change is in the audit log, by the admin API's actor, and the
	// chain verifies.
	srv.signal(t, os.Interrupt)
	if err := srv.wait(t); err != nil {
		t.Fatalf("serve: %v", err)
	}
	alog := readFile(t, filepath.Join(dir, "data", "audit.log"))
	byAdmin := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(alog), "\n") {
		var ev struct{ Actor, Action string }
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		byAdmin[ev.Action] = byAdmin[ev.Action] || ev.Actor == "admin"
	}
	for _, action := range []string{"account.added", "account.disabled", "account.enabled", "account.password", "account.deleted"} {
		if !byAdmin[action] {
			t.Errorf("audit log has no %s by admin", action)
		}
	}
	if strings.Contains(alog, pw[1]) || strings.Contains(alog, pw2[1]) || strings.Contains(alog, "$2a$") {
		t.Error("audit log holds a password or a hash")
	}
	if out := runBin(t, bin, "audit", "verify", "-c", cfgPath); !strings.Contains(out, "chain intact") {
		t.Errorf("audit verify: %s", out)
	}
}
