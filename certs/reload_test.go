package certs_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"nhsrelay/certs"
)

// tlsServer serves an echo over TLS with the Reloader's config on a
// loopback port until the test ends.
func tlsServer(t *testing.T, r *certs.Reloader) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", r.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

// dial handshakes and returns the connection and the serial it was shown.
func dial(t *testing.T, addr string, pool *x509.CertPool) (*tls.Conn, string) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "mx.nhs.test"})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func echo(t *testing.T, c *tls.Conn) {
	t.Helper()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatalf("write on existing connection: %v", err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo on existing connection = %q, %v", buf, err)
	}
}

func issueFiles(t *testing.T, ca *certs.CA, dir, name string) (string, string) {
	t.Helper()
	c, k, err := ca.IssueTLS([]string{"mx.nhs.test", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	cf, kf, err := certs.WritePair(filepath.Join(dir, name), c, k)
	if err != nil {
		t.Fatal(err)
	}
	return cf, kf
}

// replace swaps a file's content by rename, as renewal tools do.
func replace(t *testing.T, dst, src string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

func TestReloaderSIGHUPStyle(t *testing.T) {
	t.Parallel()
	ca, pool, _ := newCA(t)
	dir := t.TempDir()
	cf, kf := issueFiles(t, ca, dir, "live")
	cf2, kf2 := issueFiles(t, ca, dir, "next")
	r, err := certs.NewReloader(cf, kf, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	addr := tlsServer(t, r)
	old, serial1 := dial(t, addr, pool)

	// A broken new pair (key of another certificate) is refused; the old
	// pair keeps serving.
	replace(t, kf, kf2)
	if err := r.Reload(); err == nil {
		t.Fatal("Reload with mismatched key = nil error")
	}
	if _, s := dial(t, addr, pool); s != serial1 {
		t.Errorf("after a bad reload the server shows serial %s, want the old %s", s, serial1)
	}
	// A good pair is taken; the connection made before keeps working.
	replace(t, cf, cf2)
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	_, serial2 := dial(t, addr, pool)
	if serial2 == serial1 {
		t.Error("after a good reload the server still shows the old certificate")
	}
	echo(t, old)
}

func TestReloaderWatch(t *testing.T) {
	t.Parallel()
	ca, pool, _ := newCA(t)
	dir := t.TempDir()
	cf, kf := issueFiles(t, ca, dir, "live")
	cf2, kf2 := issueFiles(t, ca, dir, "next")
	r, err := certs.NewReloader(cf, kf, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { r.Watch(ctx, 5*time.Millisecond); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	addr := tlsServer(t, r)
	_, before := dial(t, addr, pool)
	replace(t, kf, kf2)
	replace(t, cf, cf2)
	want := r.Certificate().Leaf.SerialNumber.String()
	for i := 0; i < 2000 && want == before; i++ { // bounded: up to ~10 s
		time.Sleep(5 * time.Millisecond)
		want = r.Certificate().Leaf.SerialNumber.String()
	}
	if want == before {
		t.Fatal("Watch did not pick up the renewed certificate")
	}
	if _, after := dial(t, addr, pool); after != want {
		t.Errorf("server shows serial %s, want the renewed %s", after, want)
	}
}

func TestServerConfigRefusesOldTLS(t *testing.T) {
	t.Parallel()
	ca, pool, _ := newCA(t)
	cf, kf := issueFiles(t, ca, t.TempDir(), "live")
	r, err := certs.NewReloader(cf, kf, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := tlsServer(t, r)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := tls.Client(c, &tls.Config{RootCAs: pool, ServerName: "mx.nhs.test", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err := tc.Handshake(); err == nil {
		t.Error("TLS 1.1 handshake succeeded")
	}
	if _, err := certs.NewReloader(filepath.Join(t.TempDir(), "none.crt"), kf, nil); err == nil {
		t.Error("NewReloader with a missing file = nil error")
	}
}
