package main

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"nhsrelay/smtpd"
)

type fakeReload struct{ n int }

func (f *fakeReload) Reload() error { f.n++; return nil }

type fakeLimits struct{ got []smtpd.Limits }

func (f *fakeLimits) SetLimits(l smtpd.Limits) error { f.got = append(f.got, l); return nil }

func TestReloadAppliesHotKeysAndNamesTheRest(t *testing.T) {
	t.Parallel()
	path := writeConfigDir(t, exampleConfig)
	cur, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var logs lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	level := new(slog.LevelVar)
	tlsR, smimeR, lim := &fakeReload{}, &fakeReload{}, &fakeLimits{}
	targets := reloadTargets{level: level, tls: tlsR, smime: smimeR, smtp: lim}

	write(chain(set("log_level", `"debug"`), set("max_conns_per_ip", "5"), set("trusted_networks", `["127.0.0.1"]`),
		set("max_message_bytes", "1000000"), set("retry_min", `"2m"`))(exampleConfig))
	running, res := reload(cur, targets, logger)
	if res.refused {
		t.Fatalf("refused: %v", res.problems)
	}
	if want := []string{"server.log_level", "smtp.trusted_networks", "smtp.max_conns_per_ip"}; !reflect.DeepEqual(res.applied, want) {
		t.Errorf("applied = %v, want %v", res.applied, want)
	}
	if want := []string{"smtp.max_message_bytes", "relay.retry_min"}; !reflect.DeepEqual(res.restart, want) {
		t.Errorf("restart = %v, want %v", res.restart, want)
	}
	if len(lim.got) != 1 || lim.got[0].MaxConnsPerIP != 5 ||
		!slices.Equal(lim.got[0].TrustedNetworks, []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}) {
		t.Errorf("SetLimits got %+v", lim.got)
	}
	if level.Level() != slog.LevelDebug || tlsR.n != 1 || smimeR.n != 1 {
		t.Errorf("level %v, TLS reloads %d, S/MIME reloads %d", level.Level(), tlsR.n, smimeR.n)
	}
	if running.MaxConnsPerIP != 5 || running.LogLevel != slog.LevelDebug || running.MaxMessageBytes != 50<<20 || running.RetryMin != time.Minute {
		t.Errorf("running config: conns/IP %d level %v size %d retry %v; want hot keys new, the rest old",
			running.MaxConnsPerIP, running.LogLevel, running.MaxMessageBytes, running.RetryMin)
	}
	if !strings.Contains(logs.String(), `"msg":"config changes that take effect only after a restart","keys":["smtp.max_message_bytes","relay.retry_min"]`) {
		t.Errorf("log does not name the restart-only keys:\n%s", logs.String())
	}

	// The same file again: nothing new applies, the restart is still due.
	_, res = reload(running, targets, logger)
	if len(res.applied) != 0 || len(res.restart) != 2 {
		t.Errorf("second reload: applied %v, restart %v", res.applied, res.restart)
	}

	// A file with problems: each logged by key, nothing reloaded at all.
	logs = lockedBuffer{}
	write(chain(set("log_level", `"warn"`), set("max_conns", "-1"), set("idle_timeout", `"soon"`), add("[smtp]", "bogus = 1"))(exampleConfig))
	after, res := reload(running, targets, slog.New(slog.NewJSONHandler(&logs, nil)))
	if !res.refused || after != running {
		t.Fatalf("invalid config not refused: %+v", res)
	}
	for _, key := range []string{"smtp.max_conns", "smtp.idle_timeout", "smtp.bogus"} {
		if !strings.Contains(logs.String(), `"msg":"config reload refused","key":"`+key+`"`) {
			t.Errorf("log does not name %s:\n%s", key, logs.String())
		}
	}
	if level.Level() != slog.LevelDebug || tlsR.n != 2 || smimeR.n != 2 || len(lim.got) != 2 {
		t.Errorf("a refused reload changed something: level %v, TLS %d, S/MIME %d, SetLimits %d",
			level.Level(), tlsR.n, smimeR.n, len(lim.got))
	}
}

// serve with port 0 everywhere writes listeners.json; SIGHUP puts new
// SMTP limits in force on the running listeners and refuses a bad file;
// a clean stop removes the file.
func TestServePortZeroAndReload(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	l := newInitLayout(dir)
	if _, err := writeInit(t.Context(), l, initOptions{hostname: "localhost"}); err != nil {
		t.Fatal(err)
	}
	base := readFile(t, l.config)
	edit := func(fs ...func(string) string) {
		t.Helper()
		if err := os.WriteFile(l.config, []byte(chain(fs...)(base)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	zero := func(s string) string {
		for _, key := range []string{"submission_listen", "submissions_listen", "mx_listen", "listen"} {
			s = set(key, `"127.0.0.1:0"`)(s)
		}
		return set("trusted_networks", "[]")(s)
	}
	edit(zero)
	cfg, err := loadConfig(l.config)
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	level := new(slog.LevelVar)
	hup := make(chan os.Signal, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.NewJSONHandler(&logs, nil)), level, hup) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Error("serve did not stop")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})

	var bound boundListeners
	if !waitFor(func() bool { bound, err = readListeners(cfg.ListenersFile()); return err == nil }) {
		t.Fatalf("no listeners file: %v", err)
	}
	if bound.PID != os.Getpid() {
		t.Errorf("pid = %d, want %d", bound.PID, os.Getpid())
	}
	for name, addr := range map[string]string{"submission": bound.Submission, "submissions": bound.Submissions, "mx": bound.MX, "admin": bound.Admin} {
		if ap, err := netip.ParseAddrPort(addr); err != nil || !ap.Addr().IsLoopback() || ap.Port() == 0 {
			t.Errorf("%s = %q, want a loopback address with its port", name, addr)
		}
	}
	if resp, err := http.Get("http://" + bound.Admin + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz on the recorded admin address: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	greeting := func() (string, net.Conn) {
		t.Helper()
		c, err := net.Dial("tcp", bound.MX)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(30 * time.Second))
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil || len(line) < 4 || line[3] != '-' {
				return strings.TrimSpace(line), c
			}
		}
	}
	hangup := func(wantLog string) {
		t.Helper()
		hup <- syscall.SIGHUP
		if !waitFor(func() bool { return strings.Contains(logs.String(), wantLog) }) {
			t.Fatalf("no %q after SIGHUP", wantLog)
		}
	}

	// Two connections from loopback are fine under the default limit.
	first, _ := greeting()
	if second, _ := greeting(); !strings.HasPrefix(first, "220 ") || !strings.HasPrefix(second, "220 ") {
		t.Fatalf("greetings %q %q", first, second)
	}
	edit(zero, set("max_conns_per_ip", "2"), set("max_message_bytes", "1000000"))
	hangup(`"msg":"config reloaded","applied":"smtp.max_conns_per_ip","restart_needed":"smtp.max_message_bytes"`)
	if third, _ := greeting(); !strings.HasPrefix(third, "421 4.7.0 ") {
		t.Fatalf("third connection after lowering max_conns_per_ip to 2: %q, want 421 4.7.0", third)
	}

	// A bad file changes nothing: the limit stays 2.
	edit(zero, set("max_conns_per_ip", "50"), set("greet_wait", `"later"`))
	hangup(`"msg":"config reload refused","key":"smtp.greet_wait"`)
	if again, _ := greeting(); !strings.HasPrefix(again, "421 4.7.0 ") {
		t.Fatalf("after a refused reload: %q, want the limit of 2 still in force", again)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	done <- nil // for the cleanup
	if _, err := os.Stat(cfg.ListenersFile()); !os.IsNotExist(err) {
		t.Errorf("listeners file left after a clean stop: %v", err)
	}
}

// The example config marks exactly the keys SIGHUP applies with
// "(SIGHUP", and the README's operations section names each of them.
func TestHotKeysDocumented(t *testing.T) {
	t.Parallel()
	section, block, prevKey := "", "", false
	for _, line := range strings.Split(exampleConfig, "\n") {
		switch {
		case strings.HasPrefix(line, "["):
			section, block, prevKey = strings.Trim(line, "[]"), "", false
		case strings.HasPrefix(line, "#"):
			if prevKey {
				block, prevKey = "", false
			}
			block += line
		case strings.Contains(line, " = "):
			key := section + "." + strings.TrimSpace(strings.SplitN(line, "=", 2)[0])
			if marked := strings.Contains(block, "(SIGHUP"); marked != hotKey(key) {
				t.Errorf("%s: marked (SIGHUP) %v in the example, but reload applies it: %v", key, marked, hotKey(key))
			}
			prevKey = true
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ops, _, _ := strings.Cut(string(readme[strings.Index(string(readme), "## Operations"):]), "\n## ")
	ct := reflect.TypeFor[config]()
	for i := range ct.NumField() {
		if key := ct.Field(i).Tag.Get("key"); hotKey(key) && !strings.Contains(ops, "`"+key+"`") {
			t.Errorf("README operations section does not name %s as applied on SIGHUP", key)
		}
	}
}
