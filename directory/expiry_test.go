package directory_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"strings"
	"testing"
	"time"

	"nhsrelay/certs/certstest"
	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

// smime issues an S/MIME certificate for email valid until notAfter.
func smime(t *testing.T, ca *certstest.CA, email string, notAfter time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := ca.Issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: email}, EmailAddresses: []string{email},
		NotBefore: t0.AddDate(-1, 0, 0), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}, key.Public())
	return c.Raw
}

func TestCheckExpiry(t *testing.T) {
	t.Parallel()
	ca := certstest.NewCA(t)
	day := 24 * time.Hour
	// a: verification due in a year (seeded at t0); certificate lasts two.
	a := directorytest.Verified("a@nhs.example", mx)
	a.Certificates = [][]byte{smime(t, ca, "a@nhs.example", t0.AddDate(2, 0, 0))}
	// b: certificate runs out in 100 days; an older one already has.
	b := directorytest.Verified("b@nhs.example", mx)
	b.Certificates = [][]byte{smime(t, ca, "b@nhs.example", t0.Add(-day)), smime(t, ca, "b@nhs.example", t0.Add(100*day))}
	// c: TLS-only exception, its expired certificate does not count.
	c := directorytest.Verified("c@nhs.example", mx)
	c.TLSOnly, c.Certificates = true, [][]byte{smime(t, ca, "c@nhs.example", t0.Add(-day))}
	fx := newFixture(t, a, b, c, directorytest.Pending("p@nhs.example"))
	ctx := t.Context()

	rep, err := fx.d.CheckExpiry(ctx)
	if err != nil || rep.Checked != 3 || len(rep.Warnings)+len(rep.Suspended) != 0 || len(rep.Lines) != 0 {
		t.Fatalf("CheckExpiry at t0 = %+v, %v; want 3 checked, nothing due", rep, err)
	}

	// 75 days on: b's certificate is 25 days from expiry.
	fx.clock.Advance(75 * day)
	rep, err = fx.d.CheckExpiry(ctx)
	if err != nil || len(rep.Warnings) != 1 || len(rep.Suspended) != 0 {
		t.Fatalf("CheckExpiry at +75d = %+v, %v; want one warning", rep, err)
	}
	w := rep.Warnings[0]
	if w.Address != "b@nhs.example" || w.Kind != directory.ExpiryCertificate || w.DaysLeft != 25 ||
		rep.Lines[0] != "WARNING   b@nhs.example (A81001): S/MIME certificate expires on 2026-06-10 (25 days)" {
		t.Fatalf("warning = %+v, lines %q", w, rep.Lines)
	}

	// 101 days on: b's last certificate has expired: suspended.
	fx.clock.Advance(26 * day)
	rep, err = fx.d.CheckExpiry(ctx)
	if err != nil || len(rep.Suspended) != 1 || rep.Suspended[0].Address != "b@nhs.example" {
		t.Fatalf("CheckExpiry at +101d = %+v, %v; want b suspended", rep, err)
	}
	var nv *directory.NotVerifiedError
	if _, err := fx.d.CheckRecipient(ctx, "b@nhs.example"); !errors.As(err, &nv) ||
		nv.Reason != "suspended: S/MIME certificate expired on 2026-06-10; a new certificate is needed" {
		t.Fatalf("CheckRecipient(b) = %v", err)
	}
	hasEvent(t, fx.audit, "endpoint.suspended", "b@nhs.example", "ok")

	// 340 days on: re-verification of a and c is 25 days away.
	fx.clock.Advance(239 * day)
	rep, err = fx.d.CheckExpiry(ctx)
	if err != nil || rep.Checked != 2 || len(rep.Warnings) != 2 || rep.Warnings[0].Kind != directory.ExpiryVerification {
		t.Fatalf("CheckExpiry at +340d = %+v, %v; want two re-verification warnings", rep, err)
	}
	if !strings.Contains(rep.Lines[0], "a@nhs.example (A81001): re-verification due by 2027-03-02 (25 days)") {
		t.Fatalf("lines = %q", rep.Lines)
	}

	// A year on: both suspended, with the reason; a second run finds nothing to do.
	fx.clock.Advance(25 * day)
	rep, err = fx.d.CheckExpiry(ctx)
	if err != nil || len(rep.Suspended) != 2 || !strings.HasPrefix(rep.Lines[0], "SUSPENDED a@nhs.example (A81001): verification expired on 2027-03-02") {
		t.Fatalf("CheckExpiry at +365d = %+v, %v; want a and c suspended", rep, err)
	}
	if e := mustLookup(t, fx.d, "c@nhs.example"); e.Status != directory.StatusSuspended || e.StatusReason != "verification expired on 2027-03-02; verify again" {
		t.Fatalf("c = %s %q", e.Status, e.StatusReason)
	}
	rep, err = fx.d.CheckExpiry(ctx)
	if err != nil || rep.Checked != 0 || len(rep.Lines) != 0 {
		t.Fatalf("second CheckExpiry = %+v, %v; want nothing", rep, err)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	ca := certstest.NewCA(t)
	ok := directorytest.Verified("gp.a81001@nhs.example", directory.NextHop{Kind: directory.HopHost, Host: "mx.nhs.example:25"})
	ok.Certificates = [][]byte{smime(t, ca, "gp.a81001@nhs.example", t0.AddDate(1, 0, 0))}
	nocert := directorytest.Verified("nocert@nhs.example", directory.NextHop{Kind: directory.HopHosted})
	wrong := directorytest.Verified("wrong@nhs.example", mx)
	wrong.Certificates = [][]byte{smime(t, ca, "someone.else@nhs.example", t0.AddDate(1, 0, 0))}
	fx := newFixture(t, ok, nocert, wrong, directorytest.Pending("pending@nhs.example"))
	ctx := t.Context()

	r := fx.d.Check(ctx, "GP.A81001@nhs.example")
	if !r.OK || r.Path != "smtp to mx.nhs.example:25 (verified TLS)" || len(r.Certificates) != 1 ||
		r.Certificates[0].DaysLeft != 365 || r.Certificates[0].Problem != "" || r.Organisation == nil || len(r.Reasons) != 0 {
		t.Fatalf("Check(ok) = %+v", r)
	}
	for _, tc := range []struct{ addr, reason, path string }{
		{"nocert@nhs.example", "no valid S/MIME certificate: mail would be held, never sent in clear", "hosted here"},
		{"wrong@nhs.example", "no valid S/MIME certificate", "MX of nhs.example (verified TLS)"},
		{"pending@nhs.example", "not yet verified", "MX of nhs.example (verified TLS)"},
		{"nobody@elsewhere.example", "no such NHS endpoint in the directory", ""},
		{"bad address", "not a valid address", ""},
	} {
		r := fx.d.Check(ctx, tc.addr)
		if r.OK || !strings.Contains(strings.Join(r.Reasons, "\n"), tc.reason) || r.Path != tc.path {
			t.Errorf("Check(%s) = %+v, want not OK with %q, path %q", tc.addr, r, tc.reason, tc.path)
		}
	}
	if r := fx.d.Check(ctx, "wrong@nhs.example"); r.Certificates[0].Problem != "is for someone.else@nhs.example, not this endpoint (RFC 8550 §3)" {
		t.Errorf("certificate problem = %q", r.Certificates[0].Problem)
	}
	// Warnings within WarnBefore appear as reasons but do not stop sending.
	fx.clock.Advance(340 * 24 * time.Hour)
	r = fx.d.Check(ctx, "gp.a81001@nhs.example")
	if !r.OK || len(r.Reasons) != 2 {
		t.Fatalf("Check(25 days before expiry) = %+v, want OK with verification and certificate warnings", r)
	}
}
