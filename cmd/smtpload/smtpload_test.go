package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

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

// authBackend is a go-smtp server that requires AUTH PLAIN as u/p before
// MAIL and counts the messages it takes.
type authBackend struct {
	mu    sync.Mutex
	count int
}

func (b *authBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &authSession{b: b}, nil }

type authSession struct {
	b      *authBackend
	authed bool
}

func (s *authSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *authSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if user != "u" || pass != "p:w" {
			return errors.New("bad credentials")
		}
		s.authed = true
		return nil
	}), nil
}
func (s *authSession) Mail(string, *smtp.MailOptions) error {
	if !s.authed {
		return &smtp.SMTPError{Code: 530, Message: "auth first"}
	}
	return nil
}
func (s *authSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *authSession) Data(r io.Reader) error {
	io.Copy(io.Discard, r)
	s.b.mu.Lock()
	s.b.count++
	s.b.mu.Unlock()
	return nil
}
func (s *authSession) Reset()        {}
func (s *authSession) Logout() error { return nil }

func TestSendWithAuth(t *testing.T) {
	t.Parallel()
	ca := certstest.NewCA(t)
	be := &authBackend{}
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{ca.TLSCertificate(t, "localhost")}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	client := &tls.Config{RootCAs: ca.Pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	base := sendConfig{addr: ln.Addr().String(), sessions: 2, messages: 4, length: 100,
		from: "a@bench.test", to: "b@bench.test", tls: client, timeout: time.Minute}
	good := base
	good.user, good.pass = "u", "p:w" // the password may hold a colon: only the first one splits
	if sent, err := send(good); err != nil || sent != 4 {
		t.Fatalf("send with AUTH = %d, %v; want 4", sent, err)
	}
	bad := base
	bad.user, bad.pass = "u", "wrong"
	if sent, err := send(bad); err == nil || sent != 0 || !strings.Contains(err.Error(), "AUTH") {
		t.Fatalf("send with a wrong password = %d, %v; want an AUTH failure", sent, err)
	}
	if err := runSend([]string{"-auth", "u:p", "-m", "1", ln.Addr().String()}); err == nil || !strings.Contains(err.Error(), "-starttls") {
		t.Errorf("-auth without -starttls: %v, want a refusal", err)
	}
}
