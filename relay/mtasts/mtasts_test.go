package mtasts_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"nhsrelay/certs/certstest"
	"nhsrelay/relay/mtasts"
)

// policyServer serves body as mta-sts.example.org over HTTPS with a
// certificate from a fresh CA, and returns a client that reaches it.
func policyServer(t *testing.T, contentType string, body *atomic.Value, fetches *atomic.Int32) *http.Client {
	ca := certstest.NewCA(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if r.URL.Path != "/.well-known/mta-sts.txt" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", contentType)
		w.Write([]byte(body.Load().(string)))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.TLSCertificate(t, "mta-sts.example.org")}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
		},
	}}
}

func TestPolicyFetchedAndCached(t *testing.T) {
	t.Parallel()
	var body atomic.Value
	body.Store("version: STSv1\nmode: enforce\nmx: mx1.example.org\nmx: *.mail.example.org\nmax_age: 86400\n")
	var fetches atomic.Int32
	client := policyServer(t, "text/plain", &body, &fetches)
	txt := "v=STSv1; id=20270101T000000;"
	r := mtasts.New(mtasts.Config{Client: client, LookupTXT: func(_ context.Context, name string) ([]string, error) {
		if name != "_mta-sts.example.org" {
			return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
		}
		return []string{txt}, nil
	}})
	p, err := r.Policy(t.Context(), "Example.org.")
	if err != nil || p == nil || p.Mode != "enforce" || strings.Join(p.MX, ",") != "mx1.example.org,*.mail.example.org" {
		t.Fatalf("Policy = %+v, %v", p, err)
	}
	r.Policy(t.Context(), "example.org")
	if fetches.Load() != 1 {
		t.Fatalf("fetched %d times with the same id, want 1 (cached)", fetches.Load())
	}
	txt = "v=STSv1; id=20270202;"
	body.Store("version: STSv1\nmode: testing\nmx: mx1.example.org\nmax_age: 600\n")
	if p, _ := r.Policy(t.Context(), "example.org"); p.Mode != "testing" || fetches.Load() != 2 {
		t.Fatalf("after the id changed: %+v after %d fetches, want testing, 2", p, fetches.Load())
	}
	if p, err := r.Policy(t.Context(), "nopolicy.example"); p != nil || err != nil {
		t.Fatalf("domain without TXT: %+v, %v; want none", p, err)
	}
}

func TestPolicyRefusedWhenMalformed(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct{ ct, body string }{
		"wrong content type": {"text/html", "version: STSv1\nmode: enforce\nmx: a.example.org\nmax_age: 60\n"},
		"no mx":              {"text/plain", "version: STSv1\nmode: enforce\nmax_age: 60\n"},
		"bad version":        {"text/plain", "version: STSv2\nmode: enforce\nmx: a\nmax_age: 60\n"},
		"no max_age":         {"text/plain", "version: STSv1\nmode: enforce\nmx: a\n"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var body atomic.Value
			body.Store(c.body)
			var fetches atomic.Int32
			r := mtasts.New(mtasts.Config{Client: policyServer(t, c.ct, &body, &fetches),
				LookupTXT: func(context.Context, string) ([]string, error) { return []string{"v=STSv1; id=1"}, nil }})
			if p, err := r.Policy(t.Context(), "example.org"); err == nil || p != nil {
				t.Fatalf("Policy = %+v, %v; want an error and no policy", p, err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 60\n", "", "mode:", "max_age: -1", "version: STSv1\nmode: none\nmax_age: 99999999999\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, age, err := mtasts.Parse(strings.NewReader(s))
		if err == nil && (p == nil || age < 0 || p.Mode != "none" && len(p.MX) == 0) {
			t.Fatalf("accepted %q as %+v %v", s, p, age)
		}
	})
}
