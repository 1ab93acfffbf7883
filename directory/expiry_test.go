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

// TestOneRecipientDecision: Check (directory check, /v1/directory/check),
// CheckRecipient (RCPT, the relay at each attempt) and Usable (FHIR) give
// one answer for every address, certificates included: a remote endpoint
// without a usable certificate is refused with the reason, a hosted one
// needs none, a TLS-only exception needs none.
func TestOneRecipientDecision(t *testing.T) {
	t.Parallel()
	ca := certstest.NewCA(t)
	ok := directorytest.Verified("gp.a81001@nhs.example", directory.NextHop{Kind: directory.HopHost, Host: "mx.nhs.example:25"})
	ok.Certificates = [][]byte{smime(t, ca, "gp.a81001@nhs.example", t0.AddDate(1, 0, 0))}
	hostedNoCert := directorytest.Verified("nocert@nhs.example", directory.NextHop{Kind: directory.HopHosted})
	remoteNoCert := directorytest.Verified("remote.nocert@nhs.example", mx)
	wrong := directorytest.Verified("wrong@nhs.example", mx)
	wrong.Certificates = [][]byte{smime(t, ca, "someone.else@nhs.example", t0.AddDate(1, 0, 0))}
	expired := directorytest.Verified("expired@nhs.example", mx)
	expired.Certificates = [][]byte{smime(t, ca, "expired@nhs.example", t0.AddDate(0, 0, -1))}
	tlsOnly := directorytest.Verified("tlsonly@nhs.example", mx)
	tlsOnly.TLSOnly, tlsOnly.TLSOnlyEvidence = true, "ticket 42"
	fx := openWith(t, nil, ok, hostedNoCert, remoteNoCert, wrong, expired, tlsOnly, directorytest.Pending("pending@nhs.example"))
	ctx := t.Context()

	r := fx.d.Check(ctx, "GP.A81001@nhs.example")
	if !r.OK || r.Path != "smtp to mx.nhs.example:25 (verified TLS)" || len(r.Certificates) != 1 ||
		r.Certificates[0].DaysLeft != 365 || r.Certificates[0].Problem != "" || r.Organisation == nil || len(r.Reasons) != 0 {
		t.Fatalf("Check(ok) = %+v", r)
	}
	for _, tc := range []struct {
		addr, reason, path string
		ok, noCert         bool
	}{
		{addr: "nocert@nhs.example", ok: true, reason: "hosted here: delivered to its mailbox on this relay, so no S/MIME certificate is needed", path: "hosted here"},
		{addr: "tlsonly@nhs.example", ok: true, reason: "administrator exception", path: "MX of nhs.example (verified TLS)"},
		{addr: "remote.nocert@nhs.example", noCert: true, reason: "no S/MIME certificate in the directory; mail is never sent in clear", path: "MX of nhs.example (verified TLS)"},
		{addr: "wrong@nhs.example", noCert: true, reason: "no valid S/MIME certificate: none names wrong@nhs.example", path: "MX of nhs.example (verified TLS)"},
		{addr: "expired@nhs.example", noCert: true, reason: "no valid S/MIME certificate (expired on 2026-03-01)", path: "MX of nhs.example (verified TLS)"},
		{addr: "pending@nhs.example", reason: "not yet verified", path: "MX of nhs.example (verified TLS)"},
		{addr: "nobody@elsewhere.example", reason: "no such NHS endpoint in the directory"},
		{addr: "bad address", reason: "not a valid address"},
	} {
		r := fx.d.Check(ctx, tc.addr)
		if r.OK != tc.ok || !strings.Contains(strings.Join(r.Reasons, "\n"), tc.reason) || r.Path != tc.path {
			t.Errorf("Check(%s) = %+v, want OK %v with %q, path %q", tc.addr, r, tc.ok, tc.reason, tc.path)
		}
		_, err := fx.d.CheckRecipient(ctx, tc.addr)
		if (err == nil) != tc.ok {
			t.Errorf("CheckRecipient(%s) = %v, but Check says OK %v", tc.addr, err, tc.ok)
		}
		var nv *directory.NotVerifiedError
		if tc.noCert && (!errors.As(err, &nv) || !nv.NoCertificate || !strings.Contains(nv.Reason, tc.reason)) {
			t.Errorf("CheckRecipient(%s) = %v, want NotVerifiedError.NoCertificate saying %q", tc.addr, err, tc.reason)
		}
		if e, err := fx.d.Lookup(ctx, tc.addr); err == nil {
			if usable, why := fx.d.Usable(e); usable != tc.ok || !tc.ok && !strings.Contains(why, tc.reason) {
				t.Errorf("Usable(%s) = %v %q, but Check says OK %v, %q", tc.addr, usable, why, tc.ok, tc.reason)
			}
		}
	}
	// Warnings within WarnBefore appear as reasons but do not stop sending.
	fx.clock.Advance(340 * 24 * time.Hour)
	r = fx.d.Check(ctx, "gp.a81001@nhs.example")
	if !r.OK || len(r.Reasons) != 2 {
		t.Fatalf("Check(25 days before expiry) = %+v, want OK with verification and certificate warnings", r)
	}
}
