package certs_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"nhsrelay/certs"
	"nhsrelay/certs/certstest"
)

// TestTrustCachesChains: a chain built once is reused, but never past the
// validity of any certificate in it (here the CA expires a day before the
// leaf), never for another anchor pool, and never instead of the CRL check.
func TestTrustCachesChains(t *testing.T) {
	t.Parallel()
	ca := certstest.NewCA(t) // valid for a day
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	leaf := ca.Issue(t, &x509.Certificate{
		EmailAddresses: []string{"results@rrk.nhs.test"},
		KeyUsage:       x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		NotAfter:       time.Now().Add(48 * time.Hour),
	}, key.Public())
	now := time.Now()
	trust := &certs.Trust{Roots: ca.Pool}
	for range 3 {
		if err := trust.ValidateSMIME(leaf, nil, now, certs.Encrypt); err != nil {
			t.Fatalf("ValidateSMIME: %v", err)
		}
	}
	if n := certs.VerifiedChains(trust); n != 1 {
		t.Fatalf("%d chains cached after three checks of one certificate, want 1", n)
	}
	// The leaf is still valid when the CA has expired: the cached chain
	// must not stand in for it.
	err = trust.ValidateSMIME(leaf, nil, ca.Cert.NotAfter.Add(time.Hour), certs.Encrypt)
	if !errors.Is(err, certs.ErrExpired) || !strings.Contains(err.Error(), "issuing CA") {
		t.Fatalf("ValidateSMIME after the CA expired = %v, want ErrExpired naming the issuing CA", err)
	}

	// Organisation: the same certificate against OrgCAs (another pool, which
	// does not hold this CA) is not trusted, cache or no cache.
	other := certstest.NewCA(t)
	trust2 := &certs.Trust{Roots: ca.Pool, OrgCAs: other.Pool}
	if err := trust2.ValidateSMIME(leaf, nil, now, certs.Encrypt); err != nil {
		t.Fatal(err)
	}
	if _, ok := trust2.Organisation(leaf, nil, now); ok {
		t.Fatal("Organisation trusted a certificate from a CA outside OrgCAs after Roots had cached its chain")
	}

	// Revocation is checked on every call, including cache hits.
	rl, err := x509.ParseRevocationList(ca.CRL(t, now.Add(-time.Minute), now.Add(time.Hour), leaf))
	if err != nil {
		t.Fatal(err)
	}
	revoking := &certs.Trust{Roots: ca.Pool, CRLs: certs.NewCRLSet(rl)}
	for i := range 2 {
		if err := revoking.ValidateSMIME(leaf, nil, now, certs.Encrypt); !errors.Is(err, certs.ErrRevoked) {
			t.Fatalf("check %d of a revoked certificate = %v, want ErrRevoked", i+1, err)
		}
	}
}
