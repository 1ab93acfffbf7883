package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
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

	"nhsrelay/audit"
	"nhsrelay/directory"
	"nhsrelay/directory/boltstore"
)

// buildBinary compiles cmd/nhsrelay into a test folder.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "nhsrelay")
	cmd := exec.Command("go", "build", "-o", bin, "nhsrelay/cmd/nhsrelay")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// instance is one `nhsrelay init` folder.
type instance struct {
	name     string
	dir      string
	bin      string
	password string // of the sample account "riverside"
}

var passwordLine = regexp.MustCompile(`(?m)^\s+password\s+(\S+)$`)

func initInstance(t *testing.T, bin, name string) *instance {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	out, err := exec.Command(bin, "init", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: nhsrelay init: %v\n%s", name, err, out)
	}
	m := passwordLine.FindSubmatch(out)
	if m == nil {
		t.Fatalf("%s: init printed no password:\n%s", name, out)
	}
	return &instance{name: name, dir: dir, bin: bin, password: string(m[1])}
}

func (in *instance) path(parts ...string) string {
	return filepath.Join(append([]string{in.dir}, parts...)...)
}

// setKeys rewrites `key = value` lines of the instance's config; each key
// must be present exactly once.
func (in *instance) setKeys(t *testing.T, kv map[string]string) {
	t.Helper()
	p := in.path("nhsrelay.toml")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for k, v := range kv {
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(k) + ` = .*$`)
		if n := len(re.FindAllStringIndex(text, -1)); n != 1 {
			t.Fatalf("%s: config has %d lines for %s, want 1", in.name, n, k)
		}
		text = re.ReplaceAllLiteralString(text, k+" = "+v)
	}
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(in.bin, "check-config", "-c", p).CombinedOutput(); err != nil {
		t.Fatalf("%s: check-config: %v\n%s", in.name, err, out)
	}
}

// editDirectory opens the instance's directory (server stopped) with its
// audit log, so the changes are validated and audited as an
// administrator's would be.
func (in *instance) editDirectory(t *testing.T, edit func(ctx context.Context, d *directory.Directory)) {
	t.Helper()
	ctx := audit.WithActor(t.Context(), "e2e-admin")
	alog, err := audit.Open(in.path("data", "audit.log"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer alog.Close()
	st, err := boltstore.Open(in.path("data", "directory.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d, err := directory.Open(ctx, directory.Config{Store: st, Audit: alog})
	if err != nil {
		t.Fatal(err)
	}
	edit(ctx, d)
}

// server is a running `nhsrelay serve`.
type server struct {
	mu    sync.Mutex
	addrs map[string]string // listener mode → address, from the "listening" log lines
	log   strings.Builder
	ready chan struct{}
}

var listening = regexp.MustCompile(`msg=listening mode=(\S+) addr=(\S+)`)

// serve starts the instance and waits (bounded) until it has logged
// "nhsrelay started"; it is stopped with SIGTERM when the test ends.
func (in *instance) serve(t *testing.T) *server {
	t.Helper()
	cmd := exec.Command(in.bin, "serve", "-c", in.path("nhsrelay.toml"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{addrs: map[string]string{}, ready: make(chan struct{})}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.log.WriteString(line + "\n")
			if m := listening.FindStringSubmatch(line); m != nil {
				s.addrs[m[1]] = m[2]
			}
			s.mu.Unlock()
			if strings.Contains(line, "msg=\"nhsrelay started\"") {
				once.Do(func() { close(s.ready) })
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { <-copied; done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: serve exited: %v", in.name, err)
			}
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			t.Errorf("%s: serve did not stop within 60s of SIGTERM", in.name)
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", in.name, s.logText())
		}
	})
	select {
	case <-s.ready:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: serve did not start:\n%s", in.name, s.logText())
	}
	return s
}

func (s *server) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

func (s *server) addr(t *testing.T, mode string) string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.addrs[mode]
	if !ok {
		t.Fatalf("no %s listener logged", mode)
	}
	return a
}

// tlsClient trusts the instance's development CA.
func (in *instance) tlsClient(t *testing.T) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(in.path("ca", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no CA certificate")
	}
	return &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// waitMaildir waits (bounded) until the instance's mailbox for addr holds
// n messages, and returns them.
func (in *instance) waitMaildir(t *testing.T, addr string, n int) []string {
	t.Helper()
	box := in.path("data", "maildir", strings.ToLower(addr), "new")
	deadline := time.Now().Add(60 * time.Second)
	for {
		entries, _ := os.ReadDir(box)
		if len(entries) >= n {
			var out []string
			for _, e := range entries {
				b, err := os.ReadFile(filepath.Join(box, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, string(b))
			}
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out waiting for %d messages in %s (have %d)", in.name, n, box, len(entries))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func quoteList(items ...string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
