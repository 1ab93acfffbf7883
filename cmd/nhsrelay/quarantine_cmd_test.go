package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nhsrelay/admin"
	"nhsrelay/certs"
	"nhsrelay/certs/certstest"
	"nhsrelay/directory"
	"nhsrelay/relay/queue"
	"nhsrelay/relay/smimepolicy"
)

const quarHosted = "referrals@rx9.nhs.test"

// quarDir is the directory a policy needs to quarantine: one hosted
// endpoint.
type quarDir struct{}

func (quarDir) Lookup(_ context.Context, addr string) (directory.Endpoint, error) {
	if strings.EqualFold(addr, quarHosted) {
		return directory.Endpoint{ID: "ep1", Address: quarHosted, ODS: "RX9", Status: directory.StatusVerified,
			NextHop: directory.NextHop{Kind: directory.HopHosted}}, nil
	}
	return directory.Endpoint{}, fmt.Errorf("lookup %s: %w", addr, directory.ErrNotFound)
}

func (quarDir) Organisation(_ context.Context, ods string) (directory.Organisation, error) {
	return directory.Organisation{}, fmt.Errorf("organisation %s: %w", ods, directory.ErrNotFound)
}

// TestQuarantineCommand runs `quarantine list` and `show` against the real
// admin handler (token check and smimepolicy's quarantine API) on loopback,
// after a plain message for a hosted endpoint has been quarantined.
func TestQuarantineCommand(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	ca := certstest.NewCA(t)
	keys := filepath.Join(tmp, "keys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	cert, key := ca.SMIMECertificate(t, quarHosted)
	certstest.WritePEM(t, filepath.Join(keys, quarHosted+".crt"), cert)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keys, quarHosted+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	policy, err := smimepolicy.New(smimepolicy.Config{Hostname: "relay.rx9.nhs.test", KeysDir: keys,
		Trust: &certs.Trust{Roots: ca.Pool}, Directory: quarDir{}, QuarantineDir: filepath.Join(tmp, "quarantine"),
		QuarantineKey: []byte("0123456789abcdef0123456789abcdef"), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}

	const token = "0123456789abcdef0123456789abcdef"
	tokFile := filepath.Join(tmp, "admin.token")
	if err := os.WriteFile(tokFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := admin.LoadToken(tokFile)
	if err != nil {
		t.Fatal(err)
	}
	api := admin.New(admin.Config{Token: tok, Logger: logger})
	api.Mount(policy.AdminHandler(), "/v1/quarantine", "/v1/quarantine/")
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	cfgFile := filepath.Join(tmp, "nhsrelay.toml")
	conf := fmt.Sprintf("[admin]\nlisten = %q\ntoken_file = \"admin.token\"\n", strings.TrimPrefix(srv.URL, "http://"))
	if err := os.WriteFile(cfgFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		t.Helper()
		var out strings.Builder
		err := quarantineMain(t.Context(), append([]string{"-c", cfgFile}, args...), &out)
		return out.String(), err
	}

	if out, err := run("list"); err != nil || out != "Quarantine is empty\n" {
		t.Errorf("quarantine list (empty) = %q, %v", out, err)
	}

	m := queue.Message{ID: "Q1", From: "results@a81001.nhs.test", Inbound: true, ClientIP: "192.0.2.7", Received: time.Now()}
	ep, _ := quarDir{}.Lookup(t.Context(), quarHosted)
	msg := "From: <results@a81001.nhs.test>\r\nTo: <" + quarHosted + ">\r\nSubject: blood results tokCMD\r\n\r\nHaemoglobin normal.\r\n"
	var delivered strings.Builder
	err = policy.Open(t.Context(), m, ep, bodyOf(msg), &delivered)
	var qe *smimepolicy.QuarantineError
	if !errors.As(err, &qe) || delivered.Len() != 0 {
		t.Fatalf("Open(plain) = %v, wrote %d bytes; want a quarantine", err, delivered.Len())
	}

	out, err := run("list")
	if err != nil {
		t.Fatalf("quarantine list: %v", err)
	}
	for _, want := range []string{"-Quarantine ID-", qe.ID, "results@a81001.nhs.test", "(" + qe.Reason + ")",
		"\n" + strings.Repeat(" ", len(qe.ID)+1+1+20+1) + quarHosted + "\n", "-- 1 message in quarantine.\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("quarantine list lacks %q:\n%s", want, out)
		}
	}
	out, err = run("show", qe.ID)
	if err != nil {
		t.Fatalf("quarantine show: %v", err)
	}
	for _, want := range []string{"id:          " + qe.ID + "\n", "queue id:    Q1\n", "endpoint:    " + quarHosted + "\n",
		"from:        results@a81001.nhs.test\n", "client:      192.0.2.7\n", "reason:      " + qe.Reason + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("quarantine show lacks %q:\n%s", want, out)
		}
	}
	out, err = run("show", "-json", qe.ID)
	var rec smimepolicy.Record
	if err != nil || json.Unmarshal([]byte(out), &rec) != nil || rec.ID != qe.ID {
		t.Errorf("quarantine show -json = %q, %v", out, err)
	}
	for _, args := range [][]string{{"list"}, {"show", qe.ID}, {"list", "-json"}} {
		if out, _ := run(args...); strings.Contains(out, "tokCMD") || strings.Contains(out, "Haemoglobin") {
			t.Errorf("quarantine %v shows the message:\n%s", args, out)
		}
	}

	if _, err := run("show", "NOPE"); err == nil || !strings.Contains(err.Error(), "no quarantined message has this ID") {
		t.Errorf("quarantine show NOPE = %v, want the server's not-found error", err)
	}
	if _, err := run("show"); err == nil {
		t.Errorf("quarantine show without an ID = nil error")
	}
	if _, err := run("release", qe.ID); err == nil || !strings.Contains(err.Error(), "unknown quarantine command") {
		t.Errorf("quarantine release = %v, want unknown command", err)
	}
	// The token guards the quarantine as it guards the queue.
	if err := os.WriteFile(tokFile, []byte("wrong-token-but-long-enough"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := run("list"); err == nil || !strings.Contains(err.Error(), "admin token") {
		t.Errorf("quarantine list with a wrong token = %v, want refused", err)
	}
}

// stringBody is a relay.Body over a string.
type stringBody struct {
	*strings.Reader
	s string
}

func bodyOf(s string) *stringBody { return &stringBody{Reader: strings.NewReader(s), s: s} }

func (b *stringBody) Reopen() (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(b.s)), nil
}

func TestWriteQuarantine(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 23, 9, 5, 7, 0, time.UTC)
	recs := []smimepolicy.Record{
		{ID: "AB12-4e877d05341680b5", Endpoint: quarHosted, From: "results@a81001.nhs.test", At: at,
			Reason: "the message was not S/MIME encrypted;\n clinical mail to this endpoint must be"},
		{ID: "ZZ9-00", Endpoint: quarHosted, At: at, Reason: "signer's certificate has expired"},
	}
	var b strings.Builder
	writeQuarantine(&b, recs, time.UTC)
	want := `-Quarantine ID-        --Quarantined At---- -Sender/Endpoint-------
AB12-4e877d05341680b5  Mon Nov 23 09:05:07  results@a81001.nhs.test
(the message was not S/MIME encrypted; clinical mail to this endpoint must be)
                                            referrals@rx9.nhs.test

ZZ9-00                 Mon Nov 23 09:05:07  MAILER-DAEMON
(signer's certificate has expired)
                                            referrals@rx9.nhs.test

-- 2 messages in quarantine.
`
	if got := b.String(); got != want {
		t.Errorf("writeQuarantine =\n%s\nwant\n%s", got, want)
	}
}
