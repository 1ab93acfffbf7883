package notices_test

import (
	"bytes"
	"context"

	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"nhsrelay/certs/certstest"
	"nhsrelay/directory"
	"nhsrelay/notices"
	"nhsrelay/notices/boltstore"
	"nhsrelay/notices/dkim"
	"nhsrelay/relay"
	"nhsrelay/relay/queue"
	"nhsrelay/relay/relaytest"
)

const (
	hostname = "relay.nhs.example"
	fromAddr = "appointments@riverside.nhs.example"
)

// clock is the notices service's time; tests move it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeDir is the directory as notices and the relay see it: two
// organisations, one endpoint (patients are never in it).
type fakeDir struct{}

func (fakeDir) Organisation(_ context.Context, ods string) (directory.Organisation, error) {
	switch ods {
	case "A81001":
		return directory.Organisation{ODS: ods, Name: "Riverside Medical Practice", Address: []string{"1 River Street", "Leeds"}, Postcode: "LS1 4AP", Phone: "0113 496 0000"}, nil
	case "RX9":
		return directory.Organisation{ODS: ods, Name: "Northfield Teaching Hospitals NHS Trust"}, nil
	}
	return directory.Organisation{}, fmt.Errorf("organisation %s: %w", ods, directory.ErrNotFound)
}

func (d fakeDir) Lookup(_ context.Context, addr string) (directory.Endpoint, error) {
	if strings.EqualFold(addr, "reception.a81001@nhs.example") {
		return directory.Endpoint{ID: "ep-1", Address: addr, Status: directory.StatusVerified}, nil
	}
	return directory.Endpoint{}, fmt.Errorf("%s: %w", addr, directory.ErrNotFound)
}

func (d fakeDir) CheckRecipient(ctx context.Context, addr string) (directory.Endpoint, error) {
	return d.Lookup(ctx, addr)
}

type harness struct {
	svc   *notices.Service
	sink  *relaytest.Sink
	api   *httptest.Server
	admin *httptest.Server
	token string
	clock *clock
	txt   string // the DKIM key's TXT record
	store notices.Store
}

// start runs a notices service, a real relay (spool, bbolt queue, DKIM
// signer) and a loopback SMTP sink offering STARTTLS that stands for every
// patient's MX, until the test ends.
func start(t *testing.T, edit func(*notices.Config)) *harness {
	t.Helper()
	tmp := t.TempDir()
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	srvTLS, _ := certstest.ServerTLS(t)
	sink := relaytest.Start(t, relaytest.Options{TLS: srvTLS, RequireTLS: true})
	key, err := dkim.GenerateKey("rsa")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := dkim.New([]dkim.Key{{Domain: "riverside.nhs.example", Selector: "notices2027", Signer: key}})
	if err != nil {
		t.Fatal(err)
	}
	txt, _ := dkim.TXTRecord(key)
	qs, err := queue.OpenBolt(filepath.Join(tmp, "queue.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { qs.Close() })
	ns, err := boltstore.Open(filepath.Join(tmp, "notices.db"), bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	h := &harness{sink: sink, clock: &clock{t: time.Now().Truncate(time.Second)}, txt: txt, store: ns}
	var svc *notices.Service
	rel, err := relay.New(relay.Config{
		Hostname: hostname, SpoolDir: filepath.Join(tmp, "spool"), SpoolKey: bytes.Repeat([]byte{2}, 32),
		Store: qs, Directory: fakeDir{}, Logger: logger, NoticeSigner: signer,
		NoticeObserver: observerFunc(func(ctx context.Context, o relay.NoticeOutcome) bool { return svc.NoticeOutcome(ctx, o) }),
		LookupMX: func(context.Context, string) ([]*net.MX, error) {
			return []*net.MX{{Host: "mx.example.org.", Pref: 10}}, nil
		},
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, sink.Addr)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := notices.Config{Store: ns, Organisations: fakeDir{}, Queue: rel, Hostname: hostname,
		Orgs: map[string]notices.OrgSettings{"A81001": {From: fromAddr}}, Now: h.clock.Now, Logger: logger}
	if edit != nil {
		edit(&cfg)
	}
	svc, err = notices.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.svc = svc
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { rel.Run(ctx) })
	wg.Go(func() { svc.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	h.api = httptest.NewServer(svc.APIHandler())
	t.Cleanup(h.api.Close)
	h.admin = httptest.NewServer(svc.AdminHandler())
	t.Cleanup(h.admin.Close)
	_, h.token, err = svc.AddCredential(t.Context(), "Riverside PAS", []string{"A81001"}, "")
	if err != nil {
		t.Fatal(err)
	}
	return h
}

type observerFunc func(context.Context, relay.NoticeOutcome) bool

func (f observerFunc) NoticeOutcome(ctx context.Context, o relay.NoticeOutcome) bool {
	return f(ctx, o)
}

// post sends a notice request and decodes the answer.
func (h *harness) post(t *testing.T, token string, body any) (int, map[string]any, http.Header) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(http.MethodPost, h.api.URL+"/v1/notices", rd)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (int, map[string]any, http.Header) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil && resp.Header.Get("Content-Type") == "application/json" {
		t.Fatalf("answer is not JSON: %v: %s", err, raw)
	}
	return resp.StatusCode, out, resp.Header
}

func (h *harness) status(t *testing.T, ref string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.api.URL+"/v1/notices/"+ref, nil)
	req.Header.Set("Authorization", "Bearer "+h.token)
	code, out, _ := do(t, req)
	if code != http.StatusOK {
		t.Fatalf("GET status %s = %d %v", ref, code, out)
	}
	return out
}

func (h *harness) waitStatus(t *testing.T, ref, field, want string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := h.status(t, ref)
		if st[field] == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s of %s = %v, want %s; timeline %v", field, ref, st[field], want, st["timeline"])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// request is a valid notice request; edit changes it.
func request(ref string, start time.Time, edit func(r map[string]any)) map[string]any {
	r := map[string]any{
		"reference": ref, "organisation": "A81001", "kind": "new",
		"patient": map[string]any{"name": "Ada Lovelace", "email": "ada@example.org", "nhs_number": "943 476 5919",
			"address": map[string]any{"lines": []string{"12 Analytical Row", "Leeds"}, "postcode": "LS2 9JT"}},
		"appointment": map[string]any{"start": start.Format("2006-01-02T15:04:05"),
			"end": start.Add(30 * time.Minute).Format("2006-01-02T15:04:05"), "clinic": "Diabetes review",
			"location": "Riverside Medical Practice, 1 River Street, Leeds", "contact_phone": "0113 496 0000",
			"instructions": "Please bring your blood glucose meter.\nArrive 10 minutes early."},
	}
	if edit != nil {
		edit(r)
	}
	return r
}

// springForward is the next last Sunday of March in London (at least a
// week ahead): the clocks go forward at 01:00 UTC.
func springForward(now time.Time) time.Time { return lastSunday(now, time.March) }
func autumnBack(now time.Time) time.Time    { return lastSunday(now, time.October) }

func lastSunday(now time.Time, m time.Month) time.Time {
	london, _ := time.LoadLocation("Europe/London")
	for y := now.Year(); ; y++ {
		d := time.Date(y, m+1, 1, 0, 0, 0, 0, london).AddDate(0, 0, -1)
		for d.Weekday() != time.Sunday {
			d = d.AddDate(0, 0, -1)
		}
		if d.After(now.Add(7 * 24 * time.Hour)) {
			return d
		}
	}
}

// run runs a program and returns its standard output.
func run(t *testing.T, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s\n%s", name, args, err, out, stderr.Bytes())
	}
	return out
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
