// Command noticeload is the benchmark of appointment notices (issue 11),
// run by scripts/bench-notices: it starts the notices service in-process
// as serve wires it (bbolt notices store, audit log, relay with its spool
// and queue, DKIM signer, delivery over STARTTLS to a loopback sink that
// stands for patients' MX hosts), then POSTs notices to its HTTPS API at a
// fixed rate (open loop: a request starts on schedule whether or not
// earlier ones have been answered) and prints notices accepted per second
// and the p50/p99 latency from POST to the durable answer (the notice in
// the fsynced store). Load generator and server share the machine.
//
//	noticeload [-rate 500] [-duration 30s] [-key rsa|ed25519]
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"nhsrelay/audit"
	"nhsrelay/directory"
	"nhsrelay/notices"
	"nhsrelay/notices/boltstore"
	"nhsrelay/notices/dkim"
	"nhsrelay/relay"
	"nhsrelay/relay/queue"
)

type staticDir struct{}

func (staticDir) Organisation(_ context.Context, ods string) (directory.Organisation, error) {
	return directory.Organisation{ODS: ods, Name: "Riverside Medical Practice"}, nil
}
func (staticDir) Lookup(_ context.Context, a string) (directory.Endpoint, error) {
	return directory.Endpoint{}, directory.ErrNotFound
}
func (d staticDir) CheckRecipient(ctx context.Context, a string) (directory.Endpoint, error) {
	return d.Lookup(ctx, a)
}

type observer struct {
	svc atomic.Pointer[notices.Service]
}

func (o *observer) NoticeOutcome(ctx context.Context, n relay.NoticeOutcome) bool {
	s := o.svc.Load()
	return s != nil && s.NoticeOutcome(ctx, n)
}

// sinkBackend accepts and counts mail.
type sinkBackend struct{ n atomic.Int64 }

func (b *sinkBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{b}, nil }

type sinkSession struct{ b *sinkBackend }

func (s *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *sinkSession) Data(r io.Reader) error               { io.Copy(io.Discard, r); s.b.n.Add(1); return nil }
func (s *sinkSession) Reset()                               {}
func (s *sinkSession) Logout() error                        { return nil }

func main() {
	rate := flag.Int("rate", 500, "notices per second offered")
	dur := flag.Duration("duration", 30*time.Second, "how long to offer them")
	keyKind := flag.String("key", "rsa", "DKIM key: rsa or ed25519")
	profile := flag.String("cpuprofile", "", "write a CPU profile here")
	flag.Parse()
	if *profile != "" {
		f, err := os.Create(*profile)
		if err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	if err := run(*rate, *dur, *keyKind); err != nil {
		fmt.Fprintln(os.Stderr, "noticeload:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func run(rate int, dur time.Duration, keyKind string) error {
	tmp, err := os.MkdirTemp("", "noticeload")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

	srvCert, _ := selfSigned()
	sink := &sinkBackend{}
	ss := smtp.NewServer(sink)
	ss.Domain, ss.TLSConfig = "mx.example.org", &tls.Config{Certificates: []tls.Certificate{srvCert}}
	sinkLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go ss.Serve(sinkLn)
	defer ss.Close()

	key, err := dkim.GenerateKey(keyKind)
	if err != nil {
		return err
	}
	signer, err := dkim.New([]dkim.Key{{Domain: "riverside.nhs.example", Selector: "s1", Signer: key}})
	if err != nil {
		return err
	}
	alog, err := audit.Open(filepath.Join(tmp, "audit.log"), time.Now)
	if err != nil {
		return err
	}
	defer alog.Close()
	qs, err := queue.OpenBolt(filepath.Join(tmp, "queue.db"))
	if err != nil {
		return err
	}
	defer qs.Close()
	spoolKey := bytes.Repeat([]byte{3}, 32)
	obs := &observer{}
	rel, err := relay.New(relay.Config{Hostname: "relay.nhs.example", SpoolDir: filepath.Join(tmp, "spool"), SpoolKey: spoolKey,
		Store: qs, Directory: staticDir{}, Logger: logger, Audit: alog, NoticeSigner: signer, NoticeObserver: obs,
		NoticeRatePerDomain: 1 << 20, NoticeBurst: 1 << 20,
		LookupMX: func(context.Context, string) ([]*net.MX, error) {
			return []*net.MX{{Host: "mx.example.org.", Pref: 10}}, nil
		},
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, sinkLn.Addr().String())
		}})
	if err != nil {
		return err
	}
	ns, err := boltstore.Open(filepath.Join(tmp, "notices.db"), spoolKey)
	if err != nil {
		return err
	}
	defer ns.Close()
	svc, err := notices.New(context.Background(), notices.Config{Store: ns, Organisations: staticDir{}, Queue: rel,
		Hostname: "relay.nhs.example", Orgs: map[string]notices.OrgSettings{"A81001": {From: "appointments@riverside.nhs.example"}},
		Logger: logger, Audit: alog})
	if err != nil {
		return err
	}
	obs.svc.Store(svc)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { rel.Run(ctx) })
	wg.Go(func() { svc.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	_, token, err := svc.AddCredential(ctx, "bench", []string{"A81001"}, "")
	if err != nil {
		return err
	}
	api := httptest.NewUnstartedServer(svc.APIHandler())
	api.EnableHTTP2 = false
	api.StartTLS()
	defer api.Close()
	client := api.Client()
	// A bounded pool, as a sending system has: a request waits for a
	// connection rather than opening thousands. Its latency is counted
	// from when it was due (open loop), so waiting shows in the figures.
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	client.Transport.(*http.Transport).MaxConnsPerHost = 64

	start := time.Now().Add(48 * time.Hour).Truncate(time.Hour)
	total := int(float64(rate) * dur.Seconds())
	lat := make([]time.Duration, total)
	codes := make([]int, total)
	interval := time.Second / time.Duration(rate)
	t0 := time.Now()
	var reqs sync.WaitGroup
	for i := range total {
		due := t0.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		body, _ := json.Marshal(map[string]any{"reference": fmt.Sprintf("BENCH-%06d", i), "organisation": "A81001", "kind": "new",
			"patient": map[string]any{"name": "Ada Lovelace", "email": fmt.Sprintf("p%d@example.org", i%50), "nhs_number": "9434765919"},
			"appointment": map[string]any{"start": start.Add(time.Duration(i%200) * time.Hour).Format("2006-01-02T15:04:05"),
				"end": start.Add(time.Duration(i%200)*time.Hour + 30*time.Minute).Format("2006-01-02T15:04:05"), "location": "Riverside", "clinic": "Diabetes review"}})
		reqs.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, api.URL+"/v1/notices", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			lat[i] = time.Since(due)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				codes[i] = resp.StatusCode
			}
		})
	}
	reqs.Wait()
	elapsed := time.Since(t0)
	ok := 0
	for _, c := range codes {
		if c == http.StatusCreated {
			ok++
		}
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	fmt.Printf("offered %d notices at %d/s for %s (DKIM %s)\n", total, rate, dur, keyKind)
	fmt.Printf("accepted %d (201) in %.2fs: %.1f notices/s\n", ok, elapsed.Seconds(), float64(ok)/elapsed.Seconds())
	fmt.Printf("latency POST → durable answer: p50 %.2f ms, p99 %.2f ms, max %.2f ms (target p99 <= 20 ms)\n",
		ms(pct(0.50)), ms(pct(0.99)), ms(lat[len(lat)-1]))
	// Then: how long until every email reached the sink.
	deadline := time.Now().Add(5 * time.Minute)
	for sink.n.Load() < int64(ok) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	all := time.Since(t0)
	fmt.Printf("emails rendered, DKIM-signed and delivered over STARTTLS: %d in %.2fs from the first POST: %.1f emails/s end to end\n",
		sink.n.Load(), all.Seconds(), float64(sink.n.Load())/all.Seconds())
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
