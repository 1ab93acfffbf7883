package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"nhsrelay/certs"
)

// TestEndToEnd drives the real binary as an operator would: init, serve,
// send with swaks over STARTTLS+AUTH, find the message in the Maildir,
// inspect and act on the queue, verify the audit log, stop with SIGTERM.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "run")

	out := runBin(t, bin, "init", dir)
	password := regexp.MustCompile(`(?m)^\s+password\s+(\S+)$`).FindStringSubmatch(out)
	if password == nil {
		t.Fatalf("init output has no password line:\n%s", out)
	}
	if !strings.Contains(out, "swaks --server 127.0.0.1:2587 --tls") {
		t.Errorf("init output has no swaks line:\n%s", out)
	}
	if _, err := exec.Command(bin, "init", dir).CombinedOutput(); err == nil {
		t.Errorf("a second init into %s succeeded; want it to refuse", dir)
	}
	for name, want := range map[string]os.FileMode{"admin.token": 0o600, "spool.key": 0o600, "nhsrelay.toml": 0o600,
		"tls/server.key": 0o600, "keys/" + sampleRecipient + ".key": 0o600} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", name, fi.Mode().Perm(), err, want)
		}
	}

	// Every listener on loopback port 0: the kernel picks free ports and
	// serve says which in listeners.json (tests never guess free ports).
	cfgPath := filepath.Join(dir, "nhsrelay.toml")
	useFreePorts(t, cfgPath)
	if out := runBin(t, bin, "check-config", "-c", cfgPath); !strings.Contains(out, ": ok") {
		t.Errorf("check-config = %q, want ok", out)
	}

	srv := startServe(t, bin, cfgPath)
	bound := srv.listeners(t, filepath.Join(dir, "data", "listeners.json"))
	ports := map[string]string{"submission_listen": bound.Submission, "submissions_listen": bound.Submissions,
		"mx_listen": bound.MX, "listen": bound.Admin}
	admin := adminHTTP{base: "http://" + bound.Admin, token: strings.TrimSpace(readFile(t, filepath.Join(dir, "admin.token")))}
	srv.waitReady(t, admin.base+"/healthz")
	// The queue CLI reads admin.listen from its config; give it the
	// address serve bound (the server's own config says port 0).
	cliPath := filepath.Join(dir, "cli.toml")
	cliText := "[admin]\nlisten = " + strconv.Quote(bound.Admin) + "\ntoken_file = \"admin.token\"\n"
	if err := os.WriteFile(cliPath, []byte(cliText), 0o600); err != nil {
		t.Fatal(err)
	}

	// 1. Submission: STARTTLS with the certificate verified against the
	// development CA, AUTH PLAIN, to a hosted endpoint.
	token := fmt.Sprintf("e2e-token-%d", time.Now().UnixNano())
	caFile := filepath.Join(dir, "ca", "ca.crt")
	swaks := func(args ...string) (string, error) {
		out, err := exec.Command("swaks", append([]string{"--tls-ca-path", caFile, "--timeout", "20"}, args...)...).CombinedOutput()
		return string(out), err
	}
	got, err := swaks("--server", ports["submission_listen"], "--tls", "--tls-verify",
		"--auth", "PLAIN", "--auth-user", sampleSenderUser, "--auth-password", password[1],
		"--from", sampleSender, "--to", sampleRecipient, "--header", "Subject: e2e", "--body", token)
	if err != nil || !strings.Contains(got, "250 2.0.0 Ok: queued as") {
		t.Fatalf("swaks submission: %v\n%s", err, got)
	}
	maildir := filepath.Join(dir, "data", "maildir", sampleRecipient, "new")
	if !waitFor(func() bool { return dirContains(maildir, token) }) {
		t.Fatalf("no message with %s in %s\nserver log:\n%s", token, maildir, srv.log())
	}
	if !dirContains(maildir, "X-NHSRelay-SMIME: authenticated; account="+sampleSenderUser) {
		t.Errorf("the delivered message has no S/MIME trace header naming the account")
	}

	// 2. No open relay: the MX listener refuses a recipient not hosted here.
	got, err = swaks("--server", ports["mx_listen"], "--tls", "--from", "someone@elsewhere.example",
		"--to", "admin.b82005@hillside.nhs.example", "--quit-after", "RCPT")
	if err == nil || !strings.Contains(got, "550 5.7.1") {
		t.Errorf("MX relay attempt: err %v, want 550 5.7.1\n%s", err, got)
	}

	// 3. S/MIME fails closed, and the queue shows it: one message to two
	// verified remote endpoints whose next hop refuses connections. The one
	// with a certificate is sealed and deferred; the one without is held
	// with the reason, and the sender gets a DSN saying why.
	deadHop := refusingAddr(t)
	ca, err := certs.LoadCA(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := ca.IssueSMIME("gp.e2e@remote.nhs.example")
	if err != nil {
		t.Fatal(err)
	}
	chain, err := certs.ParseCertificates(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	for addr, certificates := range map[string][][]byte{
		"gp.e2e@remote.nhs.example":     {chain[0].Raw},
		"nocert.e2e@remote.nhs.example": nil,
	} {
		var ep struct {
			ID string `json:"id"`
		}
		admin.call(t, http.MethodPost, "/v1/directory/endpoints", map[string]any{
			"address": addr, "ods": "B82005", "certificates": certificates,
			"next_hop": map[string]string{"kind": "host", "host": deadHop, "tls": "plain-loopback"},
		}, &ep)
		admin.call(t, http.MethodPost, "/v1/directory/endpoints/"+ep.ID+"/attest", map[string]string{"evidence": "e2e test"}, nil)
	}
	got, err = swaks("--server", ports["submissions_listen"], "--tls-on-connect", "--tls-verify",
		"--auth", "PLAIN", "--auth-user", sampleSenderUser, "--auth-password", password[1],
		"--from", sampleSender, "--to", "gp.e2e@remote.nhs.example,nocert.e2e@remote.nhs.example", "--body", "queued")
	id := regexp.MustCompile(`queued as (\S+)`).FindStringSubmatch(got)
	if err != nil || id == nil {
		t.Fatalf("swaks implicit TLS: %v\n%s", err, got)
	}
	senderBox := filepath.Join(dir, "data", "maildir", sampleSender, "new")
	if !waitFor(func() bool {
		return dirContains(senderBox, "no S/MIME encryption certificate for nocert.e2e@remote.nhs.example")
	}) {
		t.Errorf("the sender got no DSN naming the missing certificate in %s", senderBox)
	}
	var list string
	if !waitFor(func() bool {
		list = runBin(t, bin, "queue", "-c", cliPath, "list")
		return strings.Contains(list, "cannot connect") && strings.Contains(list, "1 Request.")
	}) {
		t.Fatalf("queue list never showed the deferred and held message alone:\n%s\nserver log:\n%s", list, srv.log())
	}
	for _, want := range []string{"-Queue ID-", id[1] + "!", sampleSender, "(5.7.5 no S/MIME encryption certificate",
		"nocert.e2e@remote.nhs.example", "gp.e2e@remote.nhs.example", "-- 1 Kbytes in 1 Request."} {
		if !strings.Contains(list, want) {
			t.Errorf("queue list lacks %q:\n%s", want, list)
		}
	}
	if show := runBin(t, bin, "queue", "-c", cliPath, "show", id[1]); !strings.Contains(show, "state:        queued") || !strings.Contains(show, "state:        held") {
		t.Errorf("queue show:\n%s", show)
	}
	runBin(t, bin, "queue", "-c", cliPath, "retry", id[1])
	runBin(t, bin, "queue", "-c", cliPath, "delete", id[1])
	// The retry made a held recipient's DSN again; once it is delivered to
	// the hosted sender the queue is empty.
	if !waitFor(func() bool {
		list = runBin(t, bin, "queue", "-c", cliPath, "list")
		return strings.Contains(list, "Mail queue is empty")
	}) {
		t.Errorf("queue list after delete:\n%s", list)
	}
	if out, err := exec.Command(bin, "queue", "-c", cliPath, "show", id[1]).CombinedOutput(); err == nil {
		t.Errorf("queue show of a deleted message succeeded:\n%s", out)
	}

	// 4. Metrics, behind the token.
	var metrics bytes.Buffer
	admin.call(t, http.MethodGet, "/metrics", nil, &metrics)
	for _, m := range []string{"nhsrelay_relay_delivered_total", "nhsrelay_smtpd_connections_total", "go_goroutines"} {
		if !strings.Contains(metrics.String(), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}

	// 4b. certs status -c lists every certificate in use: the TLS chain and
	// S/MIME pairs from their files, the endpoints' certificates from the
	// running directory (reached through listeners.json: admin is port 0).
	out = runBin(t, bin, "certs", "status", "-c", cfgPath)
	for _, want := range []string{"tls-server", "smime-organisation", "smime-endpoint",
		"directory:referrals.rx9@nhs.example", "endpoint-encryption"} {
		if !strings.Contains(out, want) {
			t.Errorf("certs status -c lacks %q:\n%s", want, out)
		}
	}

	// 5. SIGHUP reloads and keeps serving.
	srv.signal(t, syscall.SIGHUP)
	if !waitFor(func() bool { return strings.Contains(srv.log(), "config reloaded") }) {
		t.Errorf("no config reloaded line in the log after SIGHUP")
	}
	if code := admin.status(t, "/v1/queue"); code != http.StatusOK {
		t.Errorf("admin API after SIGHUP: %d", code)
	}

	// 6. SIGTERM: graceful stop, exit 0.
	srv.signal(t, syscall.SIGTERM)
	if err := srv.wait(t); err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, srv.log())
	}
	if !strings.Contains(srv.log(), "stopped cleanly") {
		t.Errorf("log has no clean stop:\n%s", srv.log())
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "listeners.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("listeners.json left after a clean stop: %v", err)
	}
	if strings.Contains(srv.log(), token) || strings.Contains(srv.log(), password[1]) {
		t.Errorf("the log holds message content or the password")
	}

	// 7. The audit log's chain is intact; a changed record is named.
	out = runBin(t, bin, "audit", "verify", "-c", cfgPath)
	if !regexp.MustCompile(`: [1-9]\d* records, chain intact`).MatchString(out) {
		t.Errorf("audit verify = %q", out)
	}
	logPath := filepath.Join(dir, "data", "audit.log")
	auditText := readFile(t, logPath)
	for _, action := range []string{"server.started", "server.reloaded", "server.stopped", `"actor":"admin"`, `"actor":"riverside"`} {
		if !strings.Contains(auditText, action) {
			t.Errorf("audit log lacks %s", action)
		}
	}
	tampered := strings.Replace(readFile(t, logPath), `"outcome":"ok"`, `"outcome":"no"`, 1)
	bad := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(bad, []byte(tampered), 0o600); err != nil {
		t.Fatal(err)
	}
	out2, err := exec.Command(bin, "audit", "verify", "-f", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out2), "chain broken at line") {
		t.Errorf("audit verify of a changed log: %v\n%s", err, out2)
	}
}

// useFreePorts sets every listener of the config at cfgPath to loopback
// port 0: the kernel picks free ports and serve says which in
// listeners.json (tests never guess free ports).
func useFreePorts(t *testing.T, cfgPath string) {
	t.Helper()
	text := readFile(t, cfgPath)
	for _, key := range []string{"submission_listen", "submissions_listen", "mx_listen", "listen"} {
		var ok bool
		if text, ok = setKey(text, key, `"127.0.0.1:0"`); !ok {
			t.Fatalf("config has no %s", key)
		}
	}
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "nhsrelay")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runBin runs the binary and fails the test if it fails.
func runBin(t *testing.T, bin string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("nhsrelay %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, &stdout, &stderr)
	}
	return stdout.String()
}

// refusingAddr returns a loopback address that refuses connections: a
// socket bound to a port the kernel chose and never listening, held until
// the test ends so that no other process can take the port meanwhile.
func refusingAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitFor polls cond for up to 20 s.
func waitFor(cond func() bool) bool {
	for range 200 {
		if cond() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func dirContains(dir, s string) bool {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil && bytes.Contains(b, []byte(s)) {
			return true
		}
	}
	return false
}

// served is a running `nhsrelay serve`.
type served struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan error
}

func startServe(t *testing.T, bin, cfgPath string) *served {
	t.Helper()
	s := &served{cmd: exec.Command(bin, "serve", "-c", cfgPath), out: &lockedBuffer{}, done: make(chan error, 1)}
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.log())
		}
	})
	return s
}

func (s *served) log() string { return s.out.String() }

// listeners waits for serve to write the listeners file (the one of this
// process, not a stale one) and returns the addresses it bound.
func (s *served) listeners(t *testing.T, path string) boundListeners {
	t.Helper()
	var b boundListeners
	var err error
	if !waitFor(func() bool {
		b, err = readListeners(path)
		return err == nil && b.PID == s.cmd.Process.Pid
	}) {
		t.Fatalf("no listeners file from pid %d (%v, last read %+v)\n%s", s.cmd.Process.Pid, err, b, s.log())
	}
	return b
}

func (s *served) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

func (s *served) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.done:
		return err
	case <-time.After(60 * time.Second):
		return errors.New("did not exit within 60s")
	}
}

func (s *served) waitReady(t *testing.T, healthz string) {
	t.Helper()
	ok := waitFor(func() bool {
		select {
		case err := <-s.done:
			s.done <- err
			return false
		default:
		}
		resp, err := http.Get(healthz)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if !ok {
		t.Fatalf("serve did not become ready\n%s", s.log())
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// adminHTTP calls the admin API directly, for what the CLI under test does
// not cover (directory changes).
type adminHTTP struct{ base, token string }

func (a adminHTTP) call(t *testing.T, method, path string, in, out any) {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, a.base+path, body)
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s\n%s", method, path, resp.Status, data)
	}
	switch o := out.(type) {
	case nil:
	case io.Writer:
		o.Write(data)
	default:
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decode: %v\n%s", method, path, err, data)
		}
	}
}

func (a adminHTTP) status(t *testing.T, path string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, a.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
