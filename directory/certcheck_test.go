package directory_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"nhsrelay/certs/certstest"
	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

// testCA makes a CA valid for ten years around t0 (certstest's CAs follow
// the wall clock; these tests run at t0), issued by parent or self-signed.
func testCA(t *testing.T, name string, parent *certstest.CA) *certstest.CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: t0.AddDate(-5, 0, 0), NotAfter: t0.AddDate(5, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	issuer, signer := tmpl, any(key)
	if parent != nil {
		issuer, signer = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return &certstest.CA{Cert: c, Key: key, Pool: pool}
}

// leaf issues an emailProtection certificate from ca for subject/emails,
// valid from a year before t0 until notAfter.
func leaf(t *testing.T, ca *certstest.CA, subject pkix.Name, emails []string, notAfter time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return ca.Issue(t, &x509.Certificate{Subject: subject, EmailAddresses: emails,
		NotBefore: t0.AddDate(-1, 0, 0), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}, key.Public()).Raw
}

// chainCheck is a CertCheck as cmd wires it, in miniature: the chain
// through the other stored certificates must reach roots at now.
func chainCheck(roots *x509.CertPool) directory.CertCheck {
	return func(c *x509.Certificate, inter []*x509.Certificate, now time.Time) error {
		pool := x509.NewCertPool()
		for _, i := range inter {
			pool.AddCert(i)
		}
		_, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: pool, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}})
		if err != nil {
			return errors.New("certificate for " + c.Subject.CommonName + " is not issued by a trusted NHS CA")
		}
		return nil
	}
}

func openWith(t *testing.T, check directory.CertCheck, eps ...directory.Endpoint) *fixture {
	t.Helper()
	fx := &fixture{clock: directorytest.NewClock(t0), audit: &directorytest.AuditLog{}}
	for i := range eps {
		eps[i].Verification.At, eps[i].Verification.Expires = t0, t0.Add(directory.DefaultReverifyAfter)
	}
	fx.store = directorytest.NewStore(t)
	directorytest.Seed(t, fx.store, eps...)
	d, err := directory.Open(t.Context(), directory.Config{Store: fx.store, Now: fx.clock.Now, Audit: fx.audit,
		HashCost: bcrypt.MinCost, CertCheck: check, RequireSMIME: true})
	if err != nil {
		t.Fatal(err)
	}
	fx.d = d
	return fx
}

// Check judges certificates as the relay does: a chain stored with the
// leaf is used; a certificate CertCheck refuses makes the answer no, with
// its reason; and an organisation certificate (ODS code only) does not
// name an endpoint — the relay signs with it but never encrypts an
// endpoint's mail to it.
func TestCheckJudgesCertificatesAsTheRelay(t *testing.T) {
	t.Parallel()
	root := testCA(t, "NHS test root", nil)
	inter := testCA(t, "NHS test intermediate", root)
	rogue := testCA(t, "rogue CA", nil)
	year := t0.AddDate(1, 0, 0)

	org := directorytest.Verified("gp.a81001@nhs.example", mx)
	org.Certificates = [][]byte{leaf(t, root, pkix.Name{CommonName: "Test Practice", SerialNumber: "A81001"}, nil, year)}
	chain := directorytest.Verified("chain@nhs.example", mx)
	chain.Certificates = [][]byte{leaf(t, inter, pkix.Name{CommonName: "chain@nhs.example"}, []string{"chain@nhs.example"}, year), inter.Cert.Raw}
	untrusted := directorytest.Verified("rogue@nhs.example", mx)
	untrusted.Certificates = [][]byte{leaf(t, rogue, pkix.Name{CommonName: "rogue@nhs.example"}, []string{"rogue@nhs.example"}, year)}
	domain := directorytest.Verified("trust.nhs.example", mx)
	domain.ODS = "RX9"
	domain.Certificates = [][]byte{leaf(t, root, pkix.Name{CommonName: "ward"}, []string{"ward7@trust.nhs.example"}, year)}
	fx := openWith(t, chainCheck(root.Pool), org, chain, untrusted, domain)
	ctx := t.Context()

	for _, addr := range []string{"chain@nhs.example", "anyone@trust.nhs.example"} {
		if r := fx.d.Check(ctx, addr); !r.OK || strings.Contains(strings.Join(r.Reasons, "\n"), "certificate") {
			t.Errorf("Check(%s) = %+v, want OK without certificate findings", addr, r)
		}
	}
	r := fx.d.Check(ctx, "chain@nhs.example")
	if len(r.Certificates) != 2 || r.Certificates[0].CA || !r.Certificates[1].CA || r.Certificates[1].Problem != "" {
		t.Errorf("Check(chain).Certificates = %+v, want the leaf and its CA (marked, no problem)", r.Certificates)
	}
	r = fx.d.Check(ctx, "gp.a81001@nhs.example")
	orgProblem := "names only organisation A81001 (ODS code), which signs but cannot receive mail for one endpoint; " +
		"a certificate naming gp.a81001@nhs.example is needed (RFC 8550 §3)"
	if r.OK || strings.Join(r.Reasons, "\n") != "no valid S/MIME certificate: none names gp.a81001@nhs.example (RFC 8550 §3); mail is never sent in clear" ||
		len(r.Certificates) != 1 || r.Certificates[0].Problem != orgProblem {
		t.Errorf("Check(organisation certificate only) = %+v, want not OK, the certificate's problem %q", r, orgProblem)
	}
	r = fx.d.Check(ctx, "rogue@nhs.example")
	want := "no valid S/MIME certificate (certificate for rogue@nhs.example is not issued by a trusted NHS CA); mail is never sent in clear"
	if r.OK || strings.Join(r.Reasons, "\n") != want || len(r.Certificates) != 1 ||
		r.Certificates[0].Problem != "certificate for rogue@nhs.example is not issued by a trusted NHS CA" {
		t.Errorf("Check(rogue) = %+v, want not OK: %q", r, want)
	}

	// The expiry check reports the refused certificate without suspending:
	// a trust-anchor mistake must not suspend every endpoint.
	rep, err := fx.d.CheckExpiry(ctx)
	if err != nil || len(rep.Suspended) != 0 || len(rep.Warnings) != 2 {
		t.Fatalf("CheckExpiry = %+v, %v; want two warnings", rep, err)
	}
	want = "WARNING   rogue@nhs.example (A81001): S/MIME certificate refused: certificate for rogue@nhs.example is not issued by a trusted NHS CA; mail to it is held"
	wantOrg := "WARNING   gp.a81001@nhs.example (A81001): the S/MIME certificate " + orgProblem + "; mail to it is held"
	for _, w := range rep.Warnings {
		if w.Kind != directory.ExpiryCertificateProblem {
			t.Errorf("warning = %+v, want a certificate problem", w)
		}
	}
	if !slices.Contains(rep.Lines, want) || !slices.Contains(rep.Lines, wantOrg) || strings.Contains(strings.Join(rep.Lines, "\n"), " or ODS") {
		t.Errorf("lines = %q\nwant %q\nand  %q", rep.Lines, want, wantOrg)
	}
}

// Only leaf certificates that name the endpoint decide when its S/MIME
// runs out: a CA certificate stored with the chain, or a certificate for
// another address, lasting longer must not hide the leaf's expiry.
func TestCheckExpiryIgnoresCAAndOtherCertificates(t *testing.T) {
	t.Parallel()
	ca := testCA(t, "NHS test CA", nil)
	day := 24 * time.Hour
	withCA := directorytest.Verified("a@nhs.example", mx)
	withCA.Certificates = [][]byte{leaf(t, ca, pkix.Name{CommonName: "a"}, []string{"a@nhs.example"}, t0.Add(10*day)), ca.Cert.Raw}
	withOther := directorytest.Verified("b@nhs.example", mx)
	withOther.Certificates = [][]byte{
		leaf(t, ca, pkix.Name{CommonName: "other"}, []string{"other@nhs.example"}, t0.AddDate(2, 0, 0)),
		leaf(t, ca, pkix.Name{CommonName: "b"}, []string{"b@nhs.example"}, t0.Add(10*day)),
	}
	fx := openWith(t, nil, withCA, withOther)
	ctx := t.Context()

	rep, err := fx.d.CheckExpiry(ctx)
	if err != nil || len(rep.Warnings) != 2 || len(rep.Suspended) != 0 {
		t.Fatalf("CheckExpiry at t0 = %+v, %v; want both leaves' expiry warned", rep, err)
	}
	for _, w := range rep.Warnings {
		if w.Kind != directory.ExpiryCertificate || w.DaysLeft != 10 {
			t.Errorf("warning = %+v, want the certificate expiring in 10 days", w)
		}
	}
	fx.clock.Advance(11 * day)
	rep, err = fx.d.CheckExpiry(ctx)
	if err != nil || len(rep.Suspended) != 2 {
		t.Fatalf("CheckExpiry at +11d = %+v, %v; want both suspended", rep, err)
	}
	for _, addr := range []string{"a@nhs.example", "b@nhs.example"} {
		if e := mustLookup(t, fx.d, addr); e.Status != directory.StatusSuspended ||
			e.StatusReason != "S/MIME certificate expired on 2026-03-12; a new certificate is needed" {
			t.Errorf("%s = %s %q", addr, e.Status, e.StatusReason)
		}
	}
}

func TestSetCertificates(t *testing.T) {
	t.Parallel()
	ca := testCA(t, "NHS test CA", nil)
	fx := openWith(t, nil, directorytest.Verified("gp.a81001@nhs.example", mx))
	ctx := admin(t)
	e := mustLookup(t, fx.d, "gp.a81001@nhs.example")
	chain := [][]byte{leaf(t, ca, pkix.Name{CommonName: "gp"}, []string{"gp.a81001@nhs.example"}, t0.AddDate(1, 0, 0)), ca.Cert.Raw}

	if err := fx.d.SetCertificates(ctx, e.ID, chain); err != nil {
		t.Fatalf("SetCertificates: %v", err)
	}
	if got := mustLookup(t, fx.d, e.Address); len(got.Certificates) != 2 || got.Status != directory.StatusVerified {
		t.Fatalf("after SetCertificates: %d certificates, %s", len(got.Certificates), got.Status)
	}
	ev := hasEvent(t, fx.audit, "endpoint.certificates", e.Address, "ok")
	if ev.Actor != "alice" || ev.Detail != "2 certificate(s): gp.a81001@nhs.example until 2027-03-02; CA NHS test CA until 2031-03-02" {
		t.Errorf("event = %+v", ev)
	}
	if r := fx.d.Check(t.Context(), e.Address); !r.OK {
		t.Errorf("Check after SetCertificates = %+v", r)
	}

	if f := fields(t, fx.d.SetCertificates(ctx, e.ID, [][]byte{chain[0], []byte("not DER")})); f["certificates[1]"] == "" {
		t.Errorf("SetCertificates(bad) fields = %v", f)
	}
	if f := fields(t, fx.d.SetCertificates(ctx, e.ID, make([][]byte, 17))); f["certificates"] == "" {
		t.Errorf("SetCertificates(17) fields = %v", f)
	}
	if got := mustLookup(t, fx.d, e.Address); len(got.Certificates) != 2 {
		t.Errorf("a refused SetCertificates wrote: %d certificates", len(got.Certificates))
	}
	if err := fx.d.SetCertificates(ctx, "ep-none", nil); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("SetCertificates(unknown) = %v, want ErrNotFound", err)
	}
	if err := fx.d.SetCertificates(ctx, e.ID, nil); err != nil {
		t.Fatalf("SetCertificates(nil): %v", err)
	}
	if got := mustLookup(t, fx.d, e.Address); len(got.Certificates) != 0 {
		t.Errorf("after removing: %d certificates", len(got.Certificates))
	}
}

// A certificate stored before it expired is not judged again when the
// endpoint changes otherwise: its next hop can still be changed.
func TestUpdateKeepsOldCertificate(t *testing.T) {
	t.Parallel()
	root := testCA(t, "NHS test root", nil)
	e := directorytest.Verified("gp@nhs.example", mx)
	e.Certificates = [][]byte{leaf(t, root, pkix.Name{CommonName: "gp"}, []string{"gp@nhs.example"}, t0.Add(-time.Hour))}
	fx := openWith(t, chainCheck(root.Pool), e)
	got := mustLookup(t, fx.d, "gp@nhs.example")
	got.NextHop = directory.NextHop{Kind: directory.HopHost, Host: "mail.nhs.example:25"}
	if err := fx.d.UpdateEndpoint(admin(t), got); err != nil {
		t.Fatalf("UpdateEndpoint(next hop) with an old expired certificate = %v", err)
	}
	fresh := leaf(t, root, pkix.Name{CommonName: "gp"}, []string{"gp@nhs.example"}, t0.Add(-time.Minute))
	if f := fields(t, fx.d.SetCertificates(admin(t), got.ID, [][]byte{fresh})); !strings.Contains(f["certificates[0]"], "expired on") {
		t.Errorf("SetCertificates(expired) fields = %v", f)
	}
}
