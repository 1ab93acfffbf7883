package smimepolicy_test

import (
	"crypto/x509"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"nhsrelay/certs"
	"nhsrelay/certs/certstest"
	"nhsrelay/certs/smime"
	"nhsrelay/directory"
	"nhsrelay/relay"
	"nhsrelay/relay/queue"
	"nhsrelay/relay/smimepolicy"
)

// revoking returns a Trust like f's whose CRL (signed by f's CA) lists
// each of revoked as revoked an hour ago.
func (f *fixture) revoking(t *testing.T, revoked ...*x509.Certificate) (*certs.Trust, time.Time) {
	t.Helper()
	at := time.Now().Add(-time.Hour).UTC()
	rl, err := x509.ParseRevocationList(f.ca.CRL(t, at, time.Now().Add(24*time.Hour), revoked...))
	if err != nil {
		t.Fatal(err)
	}
	return &certs.Trust{Roots: f.ca.Pool, OrgCAs: f.ca.Pool, CRLs: certs.NewCRLSet(rl)}, at
}

func parse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSealHoldsRevokedRecipient: a recipient whose certificate is on its
// CA's CRL is held with the date, and nothing is written.
func TestSealHoldsRevokedRecipient(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	trust, at := f.revoking(t, parse(t, f.dir.get(remoteAddr).Certificates[0]))
	f = f.with(t, func(c *smimepolicy.Config) { c.Trust = trust })

	m := queue.Message{ID: "R1", From: senderAddr, Account: "gp"}
	out, err := sealTo(t, f, m, []directory.Endpoint{f.dir.get(remoteAddr)}, message(senderAddr, remoteAddr, "tok1"))
	want := "certificate for " + remoteAddr + " was revoked on " + at.Format(time.DateOnly)
	if !errors.Is(err, relay.ErrHold) || !errors.Is(err, certs.ErrRevoked) || err.Error() != want {
		t.Fatalf("Seal = %v, want a hold %q wrapping certs.ErrRevoked", err, want)
	}
	if len(out) != 0 {
		t.Errorf("Seal wrote %d bytes for a revoked recipient", len(out))
	}
	if cerr := f.p.CheckRecipient(t.Context(), m, f.dir.get(remoteAddr)); cerr == nil || cerr.Error() != want {
		t.Errorf("CheckRecipient = %v, want %q", cerr, want)
	}
	if evs := f.audit.Find("smime.held"); len(evs) == 0 || evs[0].Detail != want {
		t.Errorf("held events = %+v", evs)
	}
}

// TestSealRevokedSigningKey: a revoked organisation signing certificate
// holds the message rather than sending what recipients would refuse.
func TestSealRevokedSigningKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	_, kp := f.signer(f.keys, "A81001")
	trust, _ := f.revoking(t, kp.Cert)
	f = f.with(t, func(c *smimepolicy.Config) { c.Trust = trust })
	m := queue.Message{ID: "R2", From: senderAddr, Account: "gp"}
	_, err := sealTo(t, f, m, []directory.Endpoint{f.dir.get(remoteAddr)}, message(senderAddr, remoteAddr, "tok1"))
	if !errors.Is(err, relay.ErrHold) || !errors.Is(err, certs.ErrRevoked) || !strings.Contains(err.Error(), "was revoked on") {
		t.Errorf("Seal = %v, want a hold: the signing certificate was revoked", err)
	}
}

// TestOpenQuarantinesRevokedSigner: a message signed with a revoked
// certificate is quarantined, the sender told the date.
func TestOpenQuarantinesRevokedSigner(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	org, kp := f.signer(f.keys, "A81001")
	trust, at := f.revoking(t, kp.Cert)
	f = f.with(t, func(c *smimepolicy.Config) { c.Trust = trust })
	got, err := f.open(inbound("R3"), seal(t, org, f.hostedCert(), message(senderAddr, hostedAddr, "tok3")))
	var qe *smimepolicy.QuarantineError
	if !errors.As(err, &qe) || !errors.Is(err, smime.ErrUntrustedSigner) || !errors.Is(err, certs.ErrRevoked) {
		t.Fatalf("Open = %v, want a quarantine for an untrusted (revoked) signer", err)
	}
	if want := "certificate for ODS A81001 was revoked on " + at.Format(time.DateOnly); !strings.Contains(qe.Reason, want) {
		t.Errorf("reason = %q, want it to say %q", qe.Reason, want)
	}
	if got != "" {
		t.Errorf("Open wrote %d bytes towards the mailbox", len(got))
	}
}

// TestOpenODSFromNonOrganisationCA: any CA can write an ODS code into a
// subject; only an organisation CA's word ties a signer to the
// organisation. A81001's certificate comes from a trusted S/MIME anchor
// that is not an organisation CA: the signature verifies, but it speaks
// for no organisation, so the message is quarantined saying why. A mailbox
// certificate from the same CA still ties its holder by address.
func TestOpenODSFromNonOrganisationCA(t *testing.T) {
	t.Parallel()
	orgCA := certstest.NewCA(t)
	f := newFixture(t, nil)
	f = f.with(t, func(c *smimepolicy.Config) {
		c.Trust = &certs.Trust{Roots: f.ca.Pool, OrgCAs: orgCA.Pool}
	})
	org, _ := f.signer(f.keys, "A81001")
	_, err := f.open(inbound("N1"), seal(t, org, f.hostedCert(), message(senderAddr, hostedAddr, "tok4")))
	var qe *smimepolicy.QuarantineError
	if !errors.As(err, &qe) {
		t.Fatalf("Open = %v, want a quarantine", err)
	}
	want := "the message is signed by a certificate that claims organisation A81001 but is not issued by an NHS organisation CA, " +
		"so the signature cannot be tied to organisation A81001 that the sender " + senderAddr + " belongs to"
	if qe.Reason != want {
		t.Errorf("reason = %q\nwant     %q", qe.Reason, want)
	}

	mailbox, _ := f.signer(f.keys, senderAddr)
	got, err := f.open(inbound("N2"), seal(t, mailbox, f.hostedCert(), message(senderAddr, hostedAddr, "tok5")))
	if err != nil || !strings.HasPrefix(got, "X-NHSRelay-SMIME: verified; signer="+senderAddr+"; ods=A81001; alg=") {
		t.Errorf("Open(mailbox signer) = %v, delivered %q", err, got[:min(len(got), 120)])
	}
}

// TestReloadTrust: Reload swaps in the Trust LoadTrust builds (a new CRL
// holds a recipient at once), and keeps the old one if it fails to load.
func TestReloadTrust(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var next *certs.Trust
	var nextErr error
	f := newFixture(t, func(c *smimepolicy.Config) {
		c.LoadTrust = func() (*certs.Trust, error) {
			mu.Lock()
			defer mu.Unlock()
			return next, nextErr
		}
	})
	m := queue.Message{ID: "T1", From: senderAddr, Account: "gp"}
	ep := f.dir.get(remoteAddr)
	if _, err := sealTo(t, f, m, []directory.Endpoint{ep}, message(senderAddr, remoteAddr, "a")); err != nil {
		t.Fatalf("Seal before the CRL: %v", err)
	}
	revoked, _ := f.revoking(t, parse(t, ep.Certificates[0]))
	mu.Lock()
	next = revoked
	mu.Unlock()
	if err := f.p.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if f.p.Trust() != revoked {
		t.Errorf("Trust() after Reload is not the new Trust")
	}
	if _, err := sealTo(t, f, m, []directory.Endpoint{ep}, message(senderAddr, remoteAddr, "b")); !errors.Is(err, certs.ErrRevoked) {
		t.Errorf("Seal after the CRL was loaded = %v, want ErrRevoked", err)
	}
	mu.Lock()
	next, nextErr = nil, errors.New("crl.pem: no CRL")
	mu.Unlock()
	if err := f.p.Reload(); err == nil || !strings.Contains(err.Error(), "keeping the trust loaded before") {
		t.Errorf("Reload with a broken CRL = %v, want an error keeping the old trust", err)
	}
	if f.p.Trust() != revoked {
		t.Errorf("a failed Reload replaced the Trust")
	}
}

// dsnMessage is a delivery report (RFC 3464) as another relay sends it:
// from MAILER-DAEMON at that relay, which is not a directory endpoint.
func dsnMessage(from string) []byte {
	return []byte("From: Mail Delivery System <" + from + ">\r\nTo: <" + hostedAddr + ">\r\n" +
		"Subject: Delivery Status Notification (Failure)\r\nDate: Mon, 02 Mar 2026 09:00:00 +0000\r\n" +
		"Message-ID: <dsn1@relay.a81001.nhs.test>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n" +
		"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.a81001.nhs.test\r\n\r\n" +
		"Final-Recipient: rfc822; someone@a81001.nhs.test\r\nAction: failed\r\nStatus: 5.1.1\r\n" +
		"--b--\r\n")
}

// TestOpenRemoteDSN: a delivery report from another relay (null
// reverse-path, From not in the directory) signed with an NHS
// organisation's certificate for an active organisation is delivered
// with "dsn" in the trace; otherwise it is quarantined as any unknown
// sender is.
func TestOpenRemoteDSN(t *testing.T) {
	t.Parallel()
	const daemon = "MAILER-DAEMON@relay.a81001.nhs.test"
	f := newFixture(t, nil)
	f.dir.putOrg(directory.Organisation{ODS: "Y05", Name: "Closed Practice", Status: directory.OrgClosed})
	f.orgPair("Y05")
	f.orgPair("Z99") // not in the directory
	org, _ := f.signer(f.keys, "A81001")
	closed, _ := f.signer(f.keys, "Y05")
	unknown, _ := f.signer(f.keys, "Z99")
	mailbox, _ := f.signer(f.keys, senderAddr)
	nullSender := func(id string) queue.Message {
		m := inbound(id)
		m.From = ""
		return m
	}

	got, err := f.open(nullSender("D1"), seal(t, org, f.hostedCert(), dsnMessage(daemon)))
	if err != nil {
		t.Fatalf("Open(DSN signed by A81001) = %v", err)
	}
	trace := "X-NHSRelay-SMIME: verified; signer=ODS A81001; ods=A81001; dsn; alg=\"AES-256-CBC, RSAES-OAEP-SHA256\"; by=relay.rx9.nhs.test\r\n"
	if !strings.HasPrefix(got, trace) || !strings.Contains(got, "Status: 5.1.1") {
		t.Errorf("delivered:\n%s\nwant trace %q", got, trace)
	}
	if evs := f.audit.Find("smime.opened"); len(evs) != 1 || !strings.Contains(evs[0].Detail, "delivery report") {
		t.Errorf("opened events = %+v", evs)
	}

	nonOrg := f.with(t, func(c *smimepolicy.Config) {
		c.Trust = &certs.Trust{Roots: f.ca.Pool, OrgCAs: certstest.NewCA(t).Pool}
	})
	for _, tc := range []struct {
		name   string
		f      *fixture
		m      queue.Message
		signer smime.Signer
		want   string
	}{
		{"mailbox signer", f, nullSender("D2"), mailbox,
			"the sender " + daemon + " is not in the NHS directory, and the signature by " + senderAddr + " is not an NHS organisation's"},
		{"organisation closed", f, nullSender("D3"), closed,
			"the sender " + daemon + " is not in the NHS directory, and organisation Y05, which signed it, is closed in the NHS directory, not active"},
		{"organisation unknown", f, nullSender("D4"), unknown,
			"the sender " + daemon + " is not in the NHS directory, and organisation Z99, which signed it, is not in the NHS directory"},
		{"ODS from a non-organisation CA", nonOrg, nullSender("D5"), org,
			"the sender " + daemon + " is not in the NHS directory, and the signing certificate claims organisation A81001 but is not issued by an NHS organisation CA"},
		{"not a null sender", f, inbound("D6"), org,
			"the sender " + daemon + " is not in the NHS directory, so the signature by ODS A81001 cannot be tied to its organisation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.f.open(tc.m, seal(t, tc.signer, tc.f.hostedCert(), dsnMessage(daemon)))
			var qe *smimepolicy.QuarantineError
			if !errors.As(err, &qe) {
				t.Fatalf("Open = %v, want a quarantine", err)
			}
			if !strings.HasPrefix(qe.Reason, tc.want) {
				t.Errorf("reason = %q\nwant prefix %q", qe.Reason, tc.want)
			}
			if got != "" {
				t.Errorf("Open wrote %d bytes towards the mailbox", len(got))
			}
		})
	}
}
