package certs_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"

	"nhsrelay/certs"
	"nhsrelay/certs/certstest"
)

// TestScopedOrgCA: a federation peer's CA speaks for the organisations its
// scope allows and for no other, whatever ODS code its certificates claim;
// OrgCAs still speak for any.
func TestScopedOrgCA(t *testing.T) {
	t.Parallel()
	peer, org := certstest.NewCA(t), certstest.NewCA(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	orgCert := func(ca *certstest.CA, ods string) *x509.Certificate {
		return ca.Issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: ods, SerialNumber: ods},
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}, key.Public())
	}
	roots := x509.NewCertPool()
	roots.AddCert(peer.Cert)
	roots.AddCert(org.Cert)
	trust := &certs.Trust{Roots: roots, OrgCAs: org.Pool,
		ScopedOrgCAs: []certs.ScopedOrgCA{{Name: "federation peer b", Pool: peer.Pool, Allows: func(ods string) bool { return ods == "B82005" }}}}
	now := time.Now()
	for _, tc := range []struct {
		ca   *certstest.CA
		ods  string
		want bool
	}{
		{peer, "B82005", true},  // in the peer's scope
		{peer, "A81001", false}, // a peer claiming another organisation
		{org, "A81001", true},   // an organisation CA: any
		{org, "B82005", true},
	} {
		got, ok := trust.Organisation(orgCert(tc.ca, tc.ods), nil, now)
		if ok != tc.want || ok && got != tc.ods {
			t.Errorf("%s from %s: Organisation = %q, %v; want %v", tc.ods, tc.ca.Cert.Subject.CommonName, got, ok, tc.want)
		}
	}
}
