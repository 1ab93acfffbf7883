package directory_test

import (
	"errors"
	"testing"

	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

// Resolve tells the relay which endpoint an address named and where its
// mail goes, so that it can audit a redirect once per message.
func TestResolve(t *testing.T) {
	t.Parallel()
	old := directorytest.Suspended("old.a81001@nhs.example", "practice merged")
	old.Redirect = "gp.b82002@nhs.example"
	succ := directorytest.Verified("gp.b82002@nhs.example", mx)
	succ.ODS = "B82002"
	gone := directorytest.Pending("gone.a81001@nhs.example")
	gone.Redirect = "closed.a81001@nhs.example"
	fx := newFixture(t, old, succ, gone,
		directorytest.Suspended("closed.a81001@nhs.example", "mailbox closed"),
		directorytest.Verified("trust.nhs.example", mx))
	ctx := t.Context()

	r, err := fx.d.Resolve(ctx, "old.a81001@NHS.example")
	if err != nil || !r.Redirected || r.Address != "old.a81001@nhs.example" ||
		r.Requested.Address != "old.a81001@nhs.example" || r.Target.Address != "gp.b82002@nhs.example" {
		t.Fatalf("Resolve(old) = %+v, %v; want redirected from old to gp.b82002", r, err)
	}
	ev := r.RedirectEvent()
	if ev.Action != "endpoint.redirect_followed" || ev.Endpoint != "old.a81001@nhs.example" || ev.Outcome != "ok" ||
		ev.Detail != "mail for old.a81001@nhs.example follows the administrator's redirect from old.a81001@nhs.example to gp.b82002@nhs.example" {
		t.Errorf("RedirectEvent = %+v", ev)
	}
	if e, err := fx.d.CheckRecipient(ctx, "old.a81001@nhs.example"); err != nil || e.ID != r.Target.ID {
		t.Errorf("CheckRecipient(old) = %s, %v; want the target, as Resolve", e.Address, err)
	}

	r, err = fx.d.Resolve(ctx, "ward7@trust.nhs.example")
	if err != nil || r.Redirected || r.Requested.ID != r.Target.ID || r.Target.Address != "trust.nhs.example" {
		t.Errorf("Resolve(mailbox of a domain endpoint) = %+v, %v; want the domain endpoint, not redirected", r, err)
	}

	// A refusal still says what was named and where it would have gone.
	r, err = fx.d.Resolve(ctx, "gone.a81001@nhs.example")
	var nv *directory.NotVerifiedError
	if !errors.As(err, &nv) || !r.Redirected || r.Requested.Address != "gone.a81001@nhs.example" ||
		r.Target.Address != "closed.a81001@nhs.example" {
		t.Errorf("Resolve(redirect to a suspended endpoint) = %+v, %v", r, err)
	}
	if _, err := fx.d.Resolve(ctx, "nobody@nhs.example"); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("Resolve(unknown) error = %v, want ErrNotFound", err)
	}

	for _, tc := range []struct {
		addr   string
		ok     bool
		reason string
	}{
		{"gp.b82002@nhs.example", true, ""},
		{"old.a81001@nhs.example", true, ""}, // suspended, but redirected to a verified endpoint
		{"gone.a81001@nhs.example", false, "suspended: mailbox closed"},
	} {
		ok, reason := fx.d.Usable(mustLookup(t, fx.d, tc.addr))
		if ok != tc.ok || reason != tc.reason {
			t.Errorf("Usable(%s) = %t, %q; want %t, %q", tc.addr, ok, reason, tc.ok, tc.reason)
		}
	}
}
