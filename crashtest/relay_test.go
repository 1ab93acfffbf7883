package crashtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// lookTool finds a system program the tests drive; Postfix's tools live in
// /usr/sbin, which a user's PATH may lack. scripts/ensure-tools installs
// them, so a missing tool fails the test rather than skipping it.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p
		}
	}
	t.Fatalf("%s not found: run scripts/ensure-tools (make test does)", name)
	return ""
}

// buildRelay compiles cmd/nhsrelay into a temporary folder.
func buildRelay(t *testing.T) string {
	t.Helper()
	// go test puts its own GOROOT/bin first on the PATH of the tests.
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go command not found: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "nhsrelay")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goBin, "build", "-o", bin, "nhsrelay/cmd/nhsrelay").CombinedOutput()
	if err != nil {
		t.Fatalf("go build nhsrelay: %v\n%s", err, out)
	}
	return bin
}

// freePorts returns n distinct ports the kernel hands out on 127.0.0.1.
// The relay is a separate process that must come back on the same ports
// after a restart, so it cannot be handed a listener; the ports are held
// until all are chosen and then released for it to bind.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// relayProc is one nhsrelay server and the config it runs with. The same
// config and data folder serve every restart.
type relayProc struct {
	bin, dir, conf string
	smtpAddr       string // the listener the senders use (MX or submission)
	adminAddr      string
	token          string
	logPath        string
	account        account // the sample sender init made

	cmd  *exec.Cmd
	done chan error
}

// newRelay runs `nhsrelay init` in a temporary folder and rewrites the
// config for the test: loopback ports, loopback trusted, edit for the rest.
func newRelay(t *testing.T, bin string, edit func(cfg map[string]any)) *relayProc {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "relay")
	out, err := exec.Command(bin, "init", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("nhsrelay init: %v\n%s", err, out)
	}
	acct, err := sampleAccount(string(out))
	if err != nil {
		t.Fatalf("nhsrelay init output: %v\n%s", err, out)
	}
	conf := filepath.Join(dir, "nhsrelay.toml")
	var cfg map[string]any
	if _, err := toml.DecodeFile(conf, &cfg); err != nil {
		t.Fatalf("read %s: %v", conf, err)
	}
	p := freePorts(t, 2)
	r := &relayProc{
		bin: bin, dir: dir, conf: conf, account: acct,
		smtpAddr:  fmt.Sprintf("127.0.0.1:%d", p[0]),
		adminAddr: fmt.Sprintf("127.0.0.1:%d", p[1]),
		logPath:   filepath.Join(dir, "serve.log"),
	}
	table(cfg, "server")["log_format"] = "text"
	table(cfg, "server")["log_level"] = "warn"
	smtp := table(cfg, "smtp")
	smtp["submission_listen"] = r.smtpAddr
	smtp["submissions_listen"] = ""
	smtp["mx_listen"] = ""
	smtp["trusted_networks"] = []string{"127.0.0.0/8"}
	table(cfg, "admin")["listen"] = r.adminAddr
	if edit != nil {
		edit(cfg)
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(cfg); err != nil {
		t.Fatalf("encode config: %v", err)
	}
	if err := os.WriteFile(conf, buf.Bytes(), 0o600); err != nil {
		t.Fatalf("write config: %v", err)
	}
	if out, err := exec.Command(bin, "check-config", "-c", conf).CombinedOutput(); err != nil {
		t.Fatalf("nhsrelay check-config: %v\n%s", err, out)
	}
	tokFile, _ := table(cfg, "admin")["token_file"].(string)
	if tokFile == "" {
		tokFile = "admin.token"
	}
	if !filepath.IsAbs(tokFile) {
		tokFile = filepath.Join(dir, tokFile)
	}
	tok, err := os.ReadFile(tokFile)
	if err != nil {
		t.Fatalf("read admin token: %v", err)
	}
	r.token = strings.TrimSpace(string(tok))
	t.Cleanup(func() {
		if r.cmd != nil {
			r.cmd.Process.Kill()
			<-r.done
		}
		if t.Failed() {
			r.dumpLog(t)
		}
	})
	return r
}

// sampleAccount reads the sample sender from `nhsrelay init`'s summary:
//
//	username  riverside
//	password  5sfmdanwv4i2ddp2trqajlfc
//	sends as  reception.a81001@nhs.example
func sampleAccount(out string) (account, error) {
	var a account
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "username":
			a.user = f[1]
		case len(f) == 2 && f[0] == "password":
			a.pass = f[1]
		case len(f) == 3 && f[0] == "sends" && f[1] == "as":
			a.from = f[2]
		}
	}
	if a.user == "" || a.pass == "" || a.from == "" {
		return a, errors.New("no sample account (username, password, sends as) in it")
	}
	return a, nil
}

// table returns cfg[name] as a TOML table, creating it if absent.
func table(cfg map[string]any, name string) map[string]any {
	m, ok := cfg[name].(map[string]any)
	if !ok {
		m = make(map[string]any)
		cfg[name] = m
	}
	return m
}

// start runs `nhsrelay serve` and waits (bounded) until SMTP and the admin
// API answer.
func (r *relayProc) start(t *testing.T) {
	t.Helper()
	if r.cmd != nil {
		t.Fatal("relay already running")
	}
	logf, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("open relay log: %v", err)
	}
	fmt.Fprintf(logf, "=== crashtest: start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(r.bin, "serve", "-c", r.conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start nhsrelay: %v", err)
	}
	r.cmd, r.done = cmd, make(chan error, 1)
	go func() {
		r.done <- cmd.Wait()
		logf.Close()
	}()
	deadline := time.Now().Add(30 * time.Second)
	for _, addr := range []string{r.smtpAddr, r.adminAddr} {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case err := <-r.done:
				r.cmd = nil
				r.dumpLog(t)
				t.Fatalf("nhsrelay serve exited before listening on %s: %v", addr, err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("nhsrelay did not listen on %s within 30s", addr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// kill9 sends SIGKILL: no shutdown code runs, as on a crash or power cut
// (for the process; the page cache survives, which is what fsync is for).
func (r *relayProc) kill9(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 nhsrelay: %v", err)
	}
	err := <-r.done
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("nhsrelay did not die of SIGKILL: %v", err)
	}
	r.cmd = nil
}

// stop sends SIGTERM and waits (bounded) for a clean exit.
func (r *relayProc) stop(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM nhsrelay: %v", err)
	}
	select {
	case err := <-r.done:
		r.cmd = nil
		if err != nil {
			t.Errorf("nhsrelay after SIGTERM: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Errorf("nhsrelay still running 60s after SIGTERM")
	}
}

func (r *relayProc) dumpLog(t *testing.T) {
	b, err := os.ReadFile(r.logPath)
	if err != nil {
		return
	}
	const keep = 16 << 10
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	t.Logf("last lines of the nhsrelay log:\n%s", b)
}

// api calls the admin API with the bearer token and decodes a JSON answer
// into out (may be nil). Any status but 2xx fails the test.
func (r *relayProc) api(t *testing.T, method, path, body string, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+r.adminAddr+path, rd)
	if err != nil {
		t.Fatalf("admin API request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("admin API %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		t.Fatalf("admin API %s %s: read: %v", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		t.Fatalf("admin API %s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("admin API %s %s: decode: %v: %s", method, path, err, b)
		}
	}
}

// addEndpoint adds a verified endpoint for a whole domain (every address
// @domain) with the given next hop, as an administrator would: POST it,
// then attest it. A remote one is tls_only (the sink has no S/MIME keys);
// a hosted one needs no such exception, its mail never leaves the relay.
func (r *relayProc) addEndpoint(t *testing.T, domain, nextHop string, tlsOnly bool) (id string) {
	t.Helper()
	var e struct{ ID string } // directory.Endpoint, as JSON
	extra := ""
	if tlsOnly {
		extra = `,"tls_only":true,"tls_only_evidence":"crash test sink on loopback: no S/MIME keys"`
	}
	r.api(t, "POST", "/v1/directory/endpoints", fmt.Sprintf(
		`{"address":%q,"ods":"RX9","purpose":"general","next_hop":%s%s}`, domain, nextHop, extra), &e)
	if e.ID == "" {
		t.Fatalf("POST endpoint: no ID in the answer")
	}
	r.api(t, "POST", "/v1/directory/endpoints/"+e.ID+"/attest", `{"evidence":"crash test sink on loopback"}`, nil)
	return e.ID
}

// queueLen is how many messages the running relay still holds.
func (r *relayProc) queueLen(t *testing.T) int {
	t.Helper()
	var msgs []json.RawMessage // queue.Message, as JSON
	r.api(t, "GET", "/v1/queue", "", &msgs)
	return len(msgs)
}
