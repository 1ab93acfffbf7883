package certs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Reloader serves a TLS certificate that can be replaced while listeners
// run: handshakes read the current pair through GetCertificate, so
// established connections keep theirs and new ones get the new pair. A bad
// new pair (unreadable, mismatched, weak key, expired) is refused and the
// old one stays in use.
type Reloader struct {
	certFile, keyFile string
	logger            *slog.Logger
	now               func() time.Time

	cur atomic.Pointer[tls.Certificate]

	mu  sync.Mutex // serialises Reload; guards sum
	sum [32]byte   // hash of the files last loaded, for Watch
}

// NewReloader loads certFile and keyFile; it fails if they are not a usable
// pair. logger may be nil.
func NewReloader(certFile, keyFile string, logger *slog.Logger) (*Reloader, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, logger: logger, now: time.Now}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads the files again and swaps the pair in if it is usable; call
// it on SIGHUP. On error the previous pair stays in use.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cert, sum, err := r.load()
	if err != nil {
		if r.cur.Load() != nil {
			r.logger.Error("TLS certificate reload refused, keeping the previous one",
				"cert", r.certFile, "err", err)
		}
		return err
	}
	r.cur.Store(cert)
	r.sum = sum
	r.logger.Info("TLS certificate loaded", "cert", r.certFile,
		"subject", cert.Leaf.Subject.CommonName, "not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

func (r *Reloader) load() (*tls.Certificate, [32]byte, error) {
	var sum [32]byte
	certPEM, err := os.ReadFile(r.certFile)
	if err != nil {
		return nil, sum, fmt.Errorf("certs: reload: %w", err)
	}
	keyPEM, err := os.ReadFile(r.keyFile)
	if err != nil {
		return nil, sum, fmt.Errorf("certs: reload: %w", err)
	}
	sum = fileSum(certPEM, keyPEM)
	kp, err := ParseKeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, sum, fmt.Errorf("certs: reload %s: %w", r.certFile, err)
	}
	if now := r.now(); now.After(kp.Cert.NotAfter) {
		return nil, sum, fmt.Errorf("certs: reload %s: %w", r.certFile,
			&CertificateError{Subject: Name(kp.Cert), Reason: "expired on " + kp.Cert.NotAfter.UTC().Format(day), Err: ErrExpired})
	}
	tc := &tls.Certificate{PrivateKey: kp.Key, Leaf: kp.Cert}
	tc.Certificate = append(tc.Certificate, kp.Cert.Raw)
	for _, c := range kp.Chain {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return tc, sum, nil
}

func fileSum(certPEM, keyPEM []byte) [32]byte {
	h := sha256.New()
	h.Write(certPEM)
	h.Write([]byte{0})
	h.Write(keyPEM)
	var s [32]byte
	h.Sum(s[:0])
	return s
}

// Certificate returns the pair in use.
func (r *Reloader) Certificate() *tls.Certificate { return r.cur.Load() }

// GetCertificate is for tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := r.cur.Load()
	if c == nil {
		return nil, errors.New("certs: no TLS certificate loaded")
	}
	return c, nil
}

// Watch checks the files every interval until ctx ends and reloads when
// their content changes (a renewal tool rewrote them). A change that yields
// a bad pair is logged once and the old pair kept until the files change
// again.
func (r *Reloader) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastBad [32]byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		certPEM, err1 := os.ReadFile(r.certFile)
		keyPEM, err2 := os.ReadFile(r.keyFile)
		if err1 != nil || err2 != nil {
			continue // mid-rename or being rewritten; try next tick
		}
		sum := fileSum(certPEM, keyPEM)
		r.mu.Lock()
		same := bytes.Equal(sum[:], r.sum[:])
		r.mu.Unlock()
		if same || sum == lastBad {
			continue
		}
		if err := r.Reload(); err != nil {
			lastBad = sum
		}
	}
}

// ServerConfig returns a TLS server config using the Reloader: TLS 1.2 and
// 1.3 only (RFC 8996), and for 1.2 only ECDHE with AEAD ciphers
// (RFC 9325 §4.2). TLS 1.3 suites are not configurable and all are fine.
func (r *Reloader) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.GetCertificate,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256, tls.CurveP384},
	}
}
