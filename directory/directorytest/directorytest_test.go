package directorytest_test

import (
	"errors"
	"testing"

	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

func TestNew(t *testing.T) {
	t.Parallel()
	hop := directory.NextHop{Kind: directory.HopHost, Host: "127.0.0.1:2525", TLS: directory.TLSPlainLoopback}
	d := directorytest.New(t, directorytest.Verified("gp.a81001@nhs.example", hop), directorytest.Pending("new@nhs.example"),
		directorytest.Suspended("old@nhs.example", "practice closed on 2024-03-31"))
	ctx := t.Context()
	if e, err := d.CheckRecipient(ctx, "gp.a81001@nhs.example"); err != nil || e.NextHop != hop {
		t.Fatalf("CheckRecipient(verified) = %+v, %v", e, err)
	}
	var nv *directory.NotVerifiedError
	if _, err := d.CheckRecipient(ctx, "new@nhs.example"); !errors.As(err, &nv) || nv.Reason != "not yet verified" {
		t.Fatalf("CheckRecipient(pending) = %v", err)
	}
	if _, err := d.CheckRecipient(ctx, "old@nhs.example"); !errors.As(err, &nv) || nv.Reason != "suspended: practice closed on 2024-03-31" {
		t.Fatalf("CheckRecipient(suspended) = %v", err)
	}
	if _, err := d.CheckRecipient(ctx, "nobody@nhs.example"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("CheckRecipient(unknown) = %v", err)
	}
	if o, err := d.Organisation(ctx, directorytest.ODS); err != nil || o.Status != directory.OrgActive {
		t.Fatalf("Organisation(%s) = %+v, %v", directorytest.ODS, o, err)
	}
	a := directorytest.Account(t, d, "gp1", "a long test password", "gp.a81001@nhs.example")
	if _, err := d.Authenticate(ctx, a.Username, "a long test password"); err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
}

func TestOpenWithMailer(t *testing.T) {
	t.Parallel()
	m := &directorytest.Mailer{}
	log := &directorytest.AuditLog{}
	d := directorytest.Open(t, func(c *directory.Config) {
		c.Mailer, c.ChallengeFrom, c.Audit = m, "directory@relay.nhs.example", log
	}, directorytest.Pending("new@nhs.example"))
	e, err := d.Lookup(t.Context(), "new@nhs.example")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.StartChallenge(t.Context(), e.ID); err != nil {
		t.Fatalf("StartChallenge: %v", err)
	}
	sent := m.Sent()
	if len(sent) != 1 || directorytest.Code(sent[0]) == "" {
		t.Fatalf("sent = %+v, want one challenge with a code", sent)
	}
	if err := d.ConfirmChallenge(t.Context(), e.ID, directorytest.Code(sent[0])); err != nil {
		t.Fatalf("ConfirmChallenge: %v", err)
	}
	if got := log.Actions(); len(got) != 2 || got[1] != "endpoint.verified" {
		t.Fatalf("audit actions = %v", got)
	}
}

// An account for addresses the directory does not know gets them as
// pending endpoints of ODS, so that tests elsewhere need not seed them.
func TestAccountAddsMissingEndpoints(t *testing.T) {
	t.Parallel()
	d := directorytest.New(t)
	a := directorytest.Account(t, d, "gp1", "a long test password", "new.a81001@nhs.example")
	if a.ODS != directorytest.ODS || !a.Owns("new.a81001@nhs.example") {
		t.Fatalf("Account = %+v", a)
	}
	if e, err := d.Lookup(t.Context(), "new.a81001@nhs.example"); err != nil || e.Status != directory.StatusPending {
		t.Fatalf("Lookup = %+v, %v; want a pending endpoint", e, err)
	}
}
