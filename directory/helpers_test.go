package directory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"nhsrelay/audit"
	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

// t0 is the tests' "now".
var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

type fixture struct {
	d      *directory.Directory
	store  directory.Store
	clock  *directorytest.Clock
	mailer *directorytest.Mailer
	audit  *directorytest.AuditLog
}

// newFixture opens a directory at t0 with a recording mailer and audit log,
// seeded with eps.
func newFixture(t *testing.T, eps ...directory.Endpoint) *fixture {
	t.Helper()
	fx := &fixture{clock: directorytest.NewClock(t0), mailer: &directorytest.Mailer{}, audit: &directorytest.AuditLog{}}
	st := directorytest.NewStore(t)
	for i := range eps {
		if eps[i].Status == directory.StatusVerified {
			eps[i].Verification.At, eps[i].Verification.Expires = t0, t0.Add(directory.DefaultReverifyAfter)
		}
	}
	directorytest.Seed(t, st, eps...)
	fx.store = st
	d, err := directory.Open(t.Context(), directory.Config{Store: st, Now: fx.clock.Now, Audit: fx.audit,
		Mailer: fx.mailer, ChallengeFrom: "directory@relay.nhs.example", HashCost: bcrypt.MinCost})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	fx.d = d
	return fx
}

// admin is a context acting as the administrator "alice".
func admin(t *testing.T) context.Context { return audit.WithActor(t.Context(), "alice") }

func mustOrg(t *testing.T, d *directory.Directory, o directory.Organisation) {
	t.Helper()
	if err := d.PutOrganisation(admin(t), o); err != nil {
		t.Fatalf("PutOrganisation(%s): %v", o.ODS, err)
	}
}

func mustAdd(t *testing.T, d *directory.Directory, e directory.Endpoint) directory.Endpoint {
	t.Helper()
	got, err := d.AddEndpoint(admin(t), e)
	if err != nil {
		t.Fatalf("AddEndpoint(%s): %v", e.Address, err)
	}
	return got
}

func mustLookup(t *testing.T, d *directory.Directory, addr string) directory.Endpoint {
	t.Helper()
	e, err := d.Lookup(t.Context(), addr)
	if err != nil {
		t.Fatalf("Lookup(%s): %v", addr, err)
	}
	return e
}

// fields returns a *ValidationError's fields, failing the test if err is not one.
func fields(t *testing.T, err error) map[string]string {
	t.Helper()
	var ve *directory.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error = %v, want *ValidationError", err)
	}
	return ve.Fields
}

func hasEvent(t *testing.T, l *directorytest.AuditLog, action, endpoint, outcome string) audit.Event {
	t.Helper()
	for _, ev := range l.Events() {
		if ev.Action == action && ev.Endpoint == endpoint && ev.Outcome == outcome {
			return ev
		}
	}
	t.Fatalf("no audit event %s %s %s in %v", action, endpoint, outcome, l.Actions())
	return audit.Event{}
}
