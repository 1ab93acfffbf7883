package certs_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nhsrelay/certs"
	"nhsrelay/certs/certstest"
)

func rsaPub(t *testing.T) *rsa.PublicKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &k.PublicKey
}

// TestValidateSMIMERevocation: a certificate on its CA's CRL is refused
// with the date; a stale CRL, or one its CA did not sign, fails closed; a
// current CRL that does not list the certificate lets it through.
func TestValidateSMIMERevocation(t *testing.T) {
	t.Parallel()
	ca := certstest.NewCA(t)
	sameName := certstest.NewCA(t) // same subject (the test's name), another key
	var otherName *certstest.CA
	t.Run("other CA", func(t *testing.T) { otherName = certstest.NewCA(t) }) // named after the subtest
	cert, _ := ca.SMIMECertificate(t, "results@a81001.nhs.test")
	other, _ := ca.SMIMECertificate(t, "other@a81001.nhs.test")
	now := time.Now()
	revokedAt := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	if now.Before(revokedAt) {
		revokedAt = now.Add(-24 * time.Hour).UTC()
	}
	crl := func(signer *certstest.CA, next time.Time, revoked ...*x509.Certificate) *x509.RevocationList {
		rl, err := x509.ParseRevocationList(signer.CRL(t, revokedAt, next, revoked...))
		if err != nil {
			t.Fatal(err)
		}
		return rl
	}
	// tampered flips a bit of the signature: the list still names the CA
	// and carries its key identifier, but no longer verifies.
	tampered := func(rl *x509.RevocationList) *x509.RevocationList {
		der := append([]byte(nil), rl.Raw...)
		der[len(der)-1] ^= 1
		out, err := x509.ParseRevocationList(der)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if len(ca.Cert.SubjectKeyId) == 0 || string(ca.Cert.SubjectKeyId) == string(sameName.Cert.SubjectKeyId) ||
		ca.Cert.Subject.CommonName != sameName.Cert.Subject.CommonName {
		t.Fatalf("fixture: want two CAs with one name and distinct key identifiers")
	}
	for _, tc := range []struct {
		name  string
		lists []*x509.RevocationList
		cert  *x509.Certificate
		kind  error
		words string
	}{
		{name: "revoked", lists: []*x509.RevocationList{crl(ca, now.Add(time.Hour), cert)}, cert: cert, kind: certs.ErrRevoked,
			words: "certificate for results@a81001.nhs.test was revoked on " + revokedAt.Format("2006-01-02")},
		{name: "not listed", lists: []*x509.RevocationList{crl(ca, now.Add(time.Hour), other)}, cert: cert},
		{name: "no CRL for the CA", lists: []*x509.RevocationList{crl(otherName, now.Add(time.Hour), cert)}, cert: cert},
		{name: "stale CRL", lists: []*x509.RevocationList{crl(ca, now.Add(-time.Minute))}, cert: cert, kind: certs.ErrRevocationUnknown,
			words: "the CRL of " + ca.Cert.Subject.CommonName + " expired on"},
		// Two CAs with one name: the other CA's list (its own key
		// identifier) is not this CA's, so it neither revokes nor holds.
		{name: "same-name CA's CRL", lists: []*x509.RevocationList{crl(sameName, now.Add(time.Hour), cert)}, cert: cert},
		{name: "CRL with the CA's key id not signed by it", lists: []*x509.RevocationList{tampered(crl(ca, now.Add(time.Hour)))}, cert: cert,
			kind: certs.ErrRevocationUnknown, words: "not signed by that CA"},
		{name: "forged CRL beside the real one", lists: []*x509.RevocationList{crl(sameName, now.Add(time.Hour)), crl(ca, now.Add(time.Hour), cert)},
			cert: cert, kind: certs.ErrRevoked, words: "was revoked on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trust := &certs.Trust{Roots: ca.Pool, CRLs: certs.NewCRLSet(tc.lists...)}
			err := trust.ValidateSMIME(tc.cert, nil, now, certs.Encrypt)
			if tc.kind == nil {
				if err != nil {
					t.Fatalf("ValidateSMIME = %v, want nil", err)
				}
				return
			}
			var ce *certs.CertificateError
			if !errors.Is(err, tc.kind) || !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.words) {
				t.Fatalf("ValidateSMIME = %v, want %v saying %q", err, tc.kind, tc.words)
			}
		})
	}
}

// TestValidateSMIMERevokedIntermediate: a leaf under a revoked
// intermediate is refused, naming the intermediate.
func TestValidateSMIMERevokedIntermediate(t *testing.T) {
	t.Parallel()
	root := certstest.NewCA(t)
	interKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	interCert := root.Issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "NHS issuing CA 2"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}, &interKey.PublicKey)
	inter := &certstest.CA{Cert: interCert, Key: interKey}
	leaf, _ := inter.SMIMECertificate(t, "results@a81001.nhs.test")
	rl, err := x509.ParseRevocationList(root.CRL(t, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), interCert))
	if err != nil {
		t.Fatal(err)
	}
	trust := &certs.Trust{Roots: root.Pool, CRLs: certs.NewCRLSet(rl)}
	err = trust.ValidateSMIME(leaf, []*x509.Certificate{interCert}, time.Now(), certs.Sign)
	if !errors.Is(err, certs.ErrRevoked) || !strings.Contains(err.Error(), "issued by CA NHS issuing CA 2, whose certificate was revoked") {
		t.Fatalf("ValidateSMIME under a revoked intermediate = %v", err)
	}
}

// TestLoadCRLs reads PEM and DER lists and refuses a file without one.
func TestLoadCRLs(t *testing.T) {
	t.Parallel()
	ca := certstest.NewCA(t)
	cert, _ := ca.SMIMECertificate(t, "results@a81001.nhs.test")
	der := ca.CRL(t, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), cert)
	dir := t.TempDir()
	pemFile, derFile, junk := filepath.Join(dir, "ca.crl.pem"), filepath.Join(dir, "ca.crl"), filepath.Join(dir, "junk.pem")
	os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644)
	os.WriteFile(derFile, der, 0o644)
	certstest.WritePEM(t, junk, cert)
	for _, f := range []string{pemFile, derFile} {
		set, err := certs.LoadCRLs(f)
		if err != nil || set.Len() != 1 {
			t.Fatalf("LoadCRLs(%s) = %v, %v", f, set, err)
		}
		err = (&certs.Trust{Roots: ca.Pool, CRLs: set}).ValidateSMIME(cert, nil, time.Now(), certs.Sign)
		if !errors.Is(err, certs.ErrRevoked) {
			t.Errorf("with %s loaded: ValidateSMIME = %v, want ErrRevoked", f, err)
		}
	}
	for _, f := range []string{junk, filepath.Join(dir, "missing.crl")} {
		if _, err := certs.LoadCRLs(f); err == nil {
			t.Errorf("LoadCRLs(%s) = nil error", f)
		}
	}
}

// TestOrganisation: an ODS code in a subject is honoured only from an
// organisation CA, and not once the certificate is revoked or expired.
func TestOrganisation(t *testing.T) {
	t.Parallel()
	orgCA, mailCA := certstest.NewCA(t), certstest.NewCA(t)
	odsCert := func(ca *certstest.CA, subject pkix.Name) *x509.Certificate {
		return ca.Issue(t, &x509.Certificate{Subject: subject, KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}, rsaPub(t))
	}
	byOrg := odsCert(orgCA, pkix.Name{CommonName: "A81001 signing", SerialNumber: "A81001"})
	ouOnly := odsCert(mailCA, pkix.Name{CommonName: "lookalike", OrganizationalUnit: []string{"ODS:A81001"}})
	roots := x509.NewCertPool()
	roots.AddCert(orgCA.Cert)
	roots.AddCert(mailCA.Cert)
	trust := &certs.Trust{Roots: roots, OrgCAs: orgCA.Pool}
	now := time.Now()
	if ods, ok := trust.Organisation(byOrg, nil, now); !ok || ods != "A81001" {
		t.Errorf("Organisation(from the organisation CA) = %q, %v; want A81001", ods, ok)
	}
	if err := trust.ValidateSMIME(ouOnly, nil, now, certs.Sign); err != nil {
		t.Fatalf("the mailbox CA's certificate is not valid at all: %v", err)
	}
	if ods, ok := trust.Organisation(ouOnly, nil, now); ok {
		t.Errorf("Organisation(OU ODS:A81001 from a mailbox CA) = %q, true; want nothing", ods)
	}
	if _, ok := (&certs.Trust{Roots: roots}).Organisation(byOrg, nil, now); ok {
		t.Error("Organisation without organisation CAs = true")
	}
	if _, ok := trust.Organisation(byOrg, nil, byOrg.NotAfter.Add(time.Hour)); ok {
		t.Error("Organisation(expired) = true")
	}
	rl, _ := x509.ParseRevocationList(orgCA.CRL(t, now.Add(-time.Hour), now.Add(time.Hour), byOrg))
	revoked := &certs.Trust{Roots: roots, OrgCAs: orgCA.Pool, CRLs: certs.NewCRLSet(rl)}
	if _, ok := revoked.Organisation(byOrg, nil, now); ok {
		t.Error("Organisation(revoked) = true")
	}
}

// TestValidateSMIMEUsagePolicy: anyExtendedKeyUsage alone is not
// emailProtection, and Ed25519 is refused for S/MIME with a reason.
func TestValidateSMIMEUsagePolicy(t *testing.T) {
	t.Parallel()
	ca := certstest.NewCA(t)
	anyEKU := ca.Issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "a@b.nhs.test"}, EmailAddresses: []string{"a@b.nhs.test"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}, rsaPub(t))
	if err := certs.ValidateSMIME(anyEKU, nil, ca.Pool, time.Now(), certs.Sign); !errors.Is(err, certs.ErrWrongUsage) {
		t.Errorf("ValidateSMIME(anyExtendedKeyUsage only) = %v, want ErrWrongUsage", err)
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ed := ca.Issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "e@b.nhs.test"}, EmailAddresses: []string{"e@b.nhs.test"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}, pub)
	err = certs.ValidateSMIME(ed, nil, ca.Pool, time.Now(), certs.Sign)
	if !errors.Is(err, certs.ErrWeakKey) || !strings.Contains(err.Error(), "Ed25519") {
		t.Errorf("ValidateSMIME(Ed25519) = %v, want ErrWeakKey naming Ed25519", err)
	}
	if err := certs.CheckKey(pub); err != nil {
		t.Errorf("CheckKey(Ed25519) = %v; TLS may still use it", err)
	}
}

// TestValidateSMIMERefusesCA: a CA certificate is never an S/MIME leaf,
// for either purpose, even with emailProtection and an address; nor does
// it speak for an organisation.
func TestValidateSMIMERefusesCA(t *testing.T) {
	t.Parallel()
	ca := certstest.NewCA(t)
	sub := ca.Issue(t, &x509.Certificate{
		Subject:        pkix.Name{CommonName: "A81001", SerialNumber: "A81001"},
		EmailAddresses: []string{"ca@a81001.nhs.test"},
		IsCA:           true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	}, rsaPub(t))
	trust := &certs.Trust{Roots: ca.Pool, OrgCAs: ca.Pool}
	for _, p := range []certs.Purpose{certs.Sign, certs.Encrypt} {
		err := trust.ValidateSMIME(sub, nil, time.Now(), p)
		if !errors.Is(err, certs.ErrWrongUsage) || !strings.Contains(err.Error(), "ca@a81001.nhs.test is a CA certificate, not a person's or mailbox's") {
			t.Errorf("ValidateSMIME(CA, %v) = %v, want ErrWrongUsage saying it is a CA certificate", p, err)
		}
	}
	if err := trust.ValidateSMIME(ca.Cert, nil, time.Now(), certs.Sign); !errors.Is(err, certs.ErrWrongUsage) {
		t.Errorf("ValidateSMIME(root CA) = %v, want ErrWrongUsage", err)
	}
	if ods, ok := trust.Organisation(sub, nil, time.Now()); ok {
		t.Errorf("Organisation(CA certificate) = %q, true; want false", ods)
	}
}
