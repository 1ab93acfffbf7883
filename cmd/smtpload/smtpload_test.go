package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"nhsrelay/certs/certstest"
)

// startSink runs runSink in the background with args (plus a kernel-chosen
// loopback port) and returns its address and the channel of its result.
func startSink(t *testing.T, args ...string) (addr, doneFile string, result chan error) {
	t.Helper()
	dir := t.TempDir()
	addrFile, doneFile := filepath.Join(dir, "addr"), filepath.Join(dir, "done")
	result = make(chan error, 1)
	go func() {
		result <- runSink(append([]string{"-listen", "127.0.0.1:0", "-addr-file", addrFile,
			"-done-file", doneFile, "-timeout", "1m"}, args...))
	}()
	for range 200 {
		if b, err := os.ReadFile(addrFile); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b)), doneFile, result
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("sink did not write its address within 2s")
	return "", "", nil
}

// tlsFiles writes a throwaway CA's server certificate for localhost and
// 127.0.0.1 as PEM files and returns them with a client config trusting it.
func tlsFiles(t *testing.T) (certFile, keyFile string, client *tls.Config) {
	t.Helper()
	ca := certstest.NewCA(t)
	c := ca.TLSCertificate(t, "localhost", "127.0.0.1")
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	var certPEM bytes.Buffer
	for _, b := range c.Certificate {
		pem.Encode(&certPEM, &pem.Block{Type: "CERTIFICATE", Bytes: b})
	}
	if err := os.WriteFile(certFile, certPEM.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, &tls.Config{RootCAs: ca.Pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

func TestSendToSinkSTARTTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile, client := tlsFiles(t)
	addr, doneFile, result := startSink(t, "-count", "30", "-cert", certFile, "-key", keyFile)
	sent, err := send(sendConfig{addr: addr, sessions: 3, messages: 30, length: 1000,
		from: "a@bench.test", to: "b@bench.test", tls: client, timeout: time.Minute})
	if err != nil || sent != 30 {
		t.Fatalf("send = %d, %v; want 30, nil", sent, err)
	}
	if err := <-result; err != nil {
		t.Fatalf("sink: %v", err)
	}
	b, err := os.ReadFile(doneFile)
	if err != nil {
		t.Fatalf("done file: %v", err)
	}
	if ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err != nil || ns <= 0 {
		t.Errorf("done file = %q, want Unix nanoseconds", b)
	}
}

// A sink with a certificate refuses mail before STARTTLS, so a relay that
// falls back to plain SMTP fails the benchmark instead of passing it.
func TestSinkRequiresTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile, _ := tlsFiles(t)
	addr, _, _ := startSink(t, "-count", "1", "-cert", certFile, "-key", keyFile)
	sent, err := send(sendConfig{addr: addr, sessions: 1, messages: 1, length: 10,
		from: "a@bench.test", to: "b@bench.test", timeout: time.Minute})
	if err == nil || sent != 0 || !strings.Contains(err.Error(), "530") {
		t.Fatalf("plain send to a TLS sink = %d, %v; want 0 and a 530 refusal", sent, err)
	}
}

func TestBuildMessage(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 78, 79, 4096} {
		m := buildMessage("a@b", "c@d", "", "1@x", n, time.Unix(0, 0))
		head, body, ok := bytes.Cut(m, []byte("\r\n\r\n"))
		if !ok || !bytes.Contains(head, []byte("Message-Id: <1@x>")) {
			t.Fatalf("length %d: no header section with the Message-Id: %q", n, m)
		}
		payload := 0
		for _, line := range bytes.Split(bytes.TrimSuffix(body, []byte("\r\n")), []byte("\r\n")) {
			if len(line) > 78 {
				t.Errorf("length %d: line of %d octets, want at most 78", n, len(line))
			}
			payload += len(line)
		}
		if payload != n {
			t.Errorf("length %d: payload = %d octets", n, payload)
		}
	}
}
