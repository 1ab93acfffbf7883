package expiry

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nhsrelay/certs"
	"nhsrelay/certs/certstest"
	"nhsrelay/directory"
)

type fakeExpiryDir struct {
	rep directory.ExpiryReport
	err error
}

func (f *fakeExpiryDir) CheckExpiry(context.Context) (directory.ExpiryReport, error) {
	return f.rep, f.err
}

func newJob(t *testing.T, cfg Config) *Job {
	t.Helper()
	j, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

type sentMail struct{ from, to, body string }

type fakeMailer struct{ sent []sentMail }

func (m *fakeMailer) Send(_ context.Context, from string, to []string, msg io.Reader) error {
	b, err := io.ReadAll(msg)
	m.sent = append(m.sent, sentMail{from, strings.Join(to, ","), string(b)})
	return err
}

// issueFor issues a P-256 certificate valid for validity from now.
func issueFor(t *testing.T, ca *certstest.CA, tmpl *x509.Certificate, validity time.Duration) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(validity)
	return ca.Issue(t, tmpl, key.Public())
}

// gauge reads one series of a registry's gauge; ok is false if absent.
func gauge(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue series
				}
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// The daily check covers the certificates the server itself uses: a
// short-lived TLS server certificate and organisation signing certificate
// are warned about (log, gauge, summary mail), a long-lived hosted
// endpoint certificate only gets its gauge.
func TestExpiryCheckCoversCertificatesInUse(t *testing.T) {
	t.Parallel()
	ca := certstest.NewCA(t)
	serverCert := issueFor(t, ca, &x509.Certificate{Subject: pkix.Name{CommonName: "relay.nhs.example"},
		DNSNames: []string{"relay.nhs.example"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, 5*24*time.Hour)
	orgCert := issueFor(t, ca, &x509.Certificate{Subject: pkix.Name{CommonName: "Riverside Surgery", SerialNumber: "A81001"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}, 10*24*time.Hour)
	endpointCert := issueFor(t, ca, &x509.Certificate{Subject: pkix.Name{CommonName: "gp.a81001@nhs.example"},
		EmailAddresses: []string{"gp.a81001@nhs.example"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}, 400*24*time.Hour)
	keys := t.TempDir()
	certstest.WritePEM(t, filepath.Join(keys, "A81001.crt"), orgCert)
	certstest.WritePEM(t, filepath.Join(keys, "gp.a81001@nhs.example.crt"), endpointCert)
	if err := os.WriteFile(filepath.Join(keys, "A81001.key"), []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tlsCert := &tls.Certificate{Certificate: [][]byte{serverCert.Raw, ca.Cert.Raw}}

	reg := prometheus.NewRegistry()
	var logs bytes.Buffer // Once logs before it returns
	mailer := &fakeMailer{}
	e := newJob(t, Config{
		Directory: &fakeExpiryDir{rep: directory.ExpiryReport{Checked: 2}},
		Mailer:    mailer, From: "postmaster@relay.nhs.example", SummaryTo: "admin@nhs.example",
		Interval: time.Hour, WarnBefore: 30 * 24 * time.Hour, Metrics: reg,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Now: time.Now,
		Certs: func(now time.Time) ([]Cert, []error) {
			list, errs := certs.InUse(func() *tls.Certificate { return tlsCert }, "/etc/nhsrelay/tls/server.crt", keys, now)
			out := make([]Cert, len(list))
			for i, s := range list {
				out[i] = Cert(s)
			}
			return out, errs
		},
	})
	e.Once(t.Context())

	for _, c := range []struct {
		role, subject string
		min, max      float64
	}{
		{certs.RoleTLSServer, "relay.nhs.example", 4.9, 5},
		{certs.RoleTLSServer + certs.ChainSuffix, ca.Cert.Subject.CommonName, 0.9, 1},
		{certs.RoleSMIMEOrg, "ODS A81001", 9.9, 10},
		{certs.RoleSMIMEHost, "gp.a81001@nhs.example", 399.9, 400},
	} {
		got, ok := gauge(t, reg, "nhsrelay_certificate_days_left", map[string]string{"role": c.role, "subject": c.subject})
		if !ok || got < c.min || got > c.max {
			t.Errorf("days left for %s %s = %v (present %v), want %v..%v", c.role, c.subject, got, ok, c.min, c.max)
		}
	}
	if got, _ := gauge(t, reg, "nhsrelay_certificate_expiry_warnings", nil); got != 3 {
		t.Errorf("warnings gauge = %v, want 3 (server, its chain, organisation)", got)
	}
	for _, want := range []string{`"msg":"certificate needs attention","role":"tls-server","subject":"relay.nhs.example"`,
		`"role":"smime-organisation","subject":"ODS A81001"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}
	if strings.Contains(logs.String(), `"subject":"gp.a81001@nhs.example"`) {
		t.Errorf("a certificate with 400 days left was warned about:\n%s", logs.String())
	}
	if len(mailer.sent) != 1 {
		t.Fatalf("%d summary mails, want 1", len(mailer.sent))
	}
	body := mailer.sent[0].body
	for _, want := range []string{"To: <admin@nhs.example>", "Certificates this server uses: 3 need attention.",
		"tls-server certificate relay.nhs.example (/etc/nhsrelay/tls/server.crt): expires in 4 days",
		"smime-organisation certificate ODS A81001 (" + filepath.Join(keys, "A81001.crt") + "): expires in 9 days"} {
		if !strings.Contains(body, want) {
			t.Errorf("summary mail lacks %q:\n%s", want, body)
		}
	}

	// A renewed TLS certificate: the warning and the old series go.
	tlsCert = &tls.Certificate{Certificate: [][]byte{issueFor(t, ca, &x509.Certificate{Subject: pkix.Name{CommonName: "relay2.nhs.example"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, 90*24*time.Hour).Raw}}
	e.Once(t.Context())
	if _, ok := gauge(t, reg, "nhsrelay_certificate_days_left", map[string]string{"role": certs.RoleTLSServer, "subject": "relay.nhs.example"}); ok {
		t.Error("the replaced certificate's series is still exported")
	}
	if got, _ := gauge(t, reg, "nhsrelay_certificate_expiry_warnings", nil); got != 1 {
		t.Errorf("warnings gauge after renewal = %v, want 1 (organisation)", got)
	}
}

// Nothing to report: no mail. A failed directory check is itself reported.
func TestExpiryCheckMailsOnlyWhenDue(t *testing.T) {
	t.Parallel()
	mailer := &fakeMailer{}
	dir := &fakeExpiryDir{rep: directory.ExpiryReport{Checked: 4}}
	e := newJob(t, Config{Directory: dir, Mailer: mailer,
		From: "postmaster@relay.nhs.example", SummaryTo: "admin@nhs.example", Interval: time.Hour,
		WarnBefore: 30 * 24 * time.Hour, Metrics: prometheus.NewRegistry(),
		Logger: slog.New(slog.DiscardHandler), Now: time.Now,
		Certs: func(time.Time) ([]Cert, []error) { return nil, nil }})
	e.Once(t.Context())
	if len(mailer.sent) != 0 {
		t.Fatalf("mail sent with nothing due:\n%s", mailer.sent[0].body)
	}
	*dir = fakeExpiryDir{err: errors.New("store closed")}
	e.Once(t.Context())
	if len(mailer.sent) != 1 || !strings.Contains(mailer.sent[0].body, "expiry check failed") {
		t.Fatalf("failed check: %d mails %v", len(mailer.sent), mailer.sent)
	}
}
