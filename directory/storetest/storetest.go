package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"nhsrelay/directory"
)

// Run checks a Store. open must return a new, empty store whose cleanup it
// registers on t; every subtest opens its own.
func Run(t *testing.T, open func(t *testing.T) directory.Store) {
	t.Run("LoadEmpty", func(t *testing.T) {
		t.Parallel()
		snap, err := open(t).Load(t.Context())
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if snap.Revision != 0 || len(snap.Organisations)+len(snap.Endpoints)+len(snap.Accounts)+len(snap.Challenges) != 0 {
			t.Fatalf("Load(empty store) = %+v, want nothing at revision 0", snap)
		}
	})
	t.Run("ApplyThenLoad", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		b := sampleBatch()
		mustApply(t, s, b)
		snap := mustLoad(t, s)
		same(t, "organisations", snap.Organisations, b.Organisations, func(o directory.Organisation) string { return o.ODS })
		same(t, "endpoints", snap.Endpoints, b.Endpoints, func(e directory.Endpoint) string { return e.ID })
		same(t, "accounts", snap.Accounts, b.Accounts, func(a directory.Account) string { return a.Username })
		same(t, "challenges", snap.Challenges, b.Challenges, func(c directory.Challenge) string { return c.EndpointID })
		if snap.Revision != 1 {
			t.Errorf("Revision after one Apply = %d, want 1", snap.Revision)
		}
	})
	t.Run("ApplyReplaces", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		b := sampleBatch()
		mustApply(t, s, b)
		o, e := b.Organisations[0], b.Endpoints[0]
		o.Name, o.Status = "Renamed Practice", directory.OrgClosed
		e.Status, e.StatusReason = directory.StatusSuspended, "practice closed on 2024-03-31"
		a := b.Accounts[0]
		a.Disabled = true
		c := b.Challenges[0]
		c.Attempts = 3
		mustApply(t, s, directory.Batch{Organisations: []directory.Organisation{o},
			Endpoints: []directory.Endpoint{e}, Accounts: []directory.Account{a}, Challenges: []directory.Challenge{c}})
		snap := mustLoad(t, s)
		wantO := append([]directory.Organisation{o}, b.Organisations[1:]...)
		wantE := append([]directory.Endpoint{e}, b.Endpoints[1:]...)
		same(t, "organisations", snap.Organisations, wantO, func(o directory.Organisation) string { return o.ODS })
		same(t, "endpoints", snap.Endpoints, wantE, func(e directory.Endpoint) string { return e.ID })
		same(t, "accounts", snap.Accounts, []directory.Account{a}, func(a directory.Account) string { return a.Username })
		same(t, "challenges", snap.Challenges, []directory.Challenge{c}, func(c directory.Challenge) string { return c.EndpointID })
	})
	t.Run("DeleteChallenge", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		b := sampleBatch()
		mustApply(t, s, b)
		mustApply(t, s, directory.Batch{DeleteChallenges: []string{b.Challenges[0].EndpointID, "ep-never-existed"}})
		if got := mustLoad(t, s).Challenges; len(got) != 0 {
			t.Fatalf("challenges after delete = %+v, want none", got)
		}
	})
	t.Run("DeleteAccount", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		b := sampleBatch()
		mustApply(t, s, b)
		mustApply(t, s, directory.Batch{DeleteAccounts: []string{b.Accounts[0].Username, "never-existed"}})
		snap := mustLoad(t, s)
		if len(snap.Accounts) != 0 {
			t.Fatalf("accounts after delete = %+v, want none", snap.Accounts)
		}
		if snap.Revision != 2 {
			t.Errorf("Revision after two Applies = %d, want 2", snap.Revision)
		}
		same(t, "endpoints", snap.Endpoints, b.Endpoints, func(e directory.Endpoint) string { return e.ID })
	})
	t.Run("PutAndDeleteInOneBatch", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		b := sampleBatch()
		mustApply(t, s, b)
		// Confirming a challenge: the endpoint changes and the challenge goes, together.
		e := b.Endpoints[1]
		e.Status = directory.StatusVerified
		mustApply(t, s, directory.Batch{Endpoints: []directory.Endpoint{e}, DeleteChallenges: []string{b.Challenges[0].EndpointID}})
		snap := mustLoad(t, s)
		if len(snap.Challenges) != 0 {
			t.Errorf("challenges = %+v, want none", snap.Challenges)
		}
		same(t, "endpoints", snap.Endpoints, []directory.Endpoint{b.Endpoints[0], e}, func(e directory.Endpoint) string { return e.ID })
	})
	t.Run("EmptyKeyFailsWholeBatch", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name string
			edit func(*directory.Batch)
		}{
			{"organisation", func(b *directory.Batch) {
				b.Organisations = append(b.Organisations, directory.Organisation{Name: "no code"})
			}},
			{"endpoint", func(b *directory.Batch) {
				b.Endpoints = append(b.Endpoints, directory.Endpoint{Address: "x@nhs.example"})
			}},
			{"account", func(b *directory.Batch) { b.Accounts = append(b.Accounts, directory.Account{}) }},
			{"challenge", func(b *directory.Batch) { b.Challenges = append(b.Challenges, directory.Challenge{}) }},
			{"delete", func(b *directory.Batch) { b.DeleteChallenges = append(b.DeleteChallenges, "") }},
			{"delete account", func(b *directory.Batch) { b.DeleteAccounts = append(b.DeleteAccounts, "") }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				s := open(t)
				b := sampleBatch()
				tc.edit(&b)
				if err := s.Apply(t.Context(), b); !errors.Is(err, directory.ErrEmptyKey) {
					t.Fatalf("Apply(batch with empty %s key) = %v, want ErrEmptyKey", tc.name, err)
				}
				snap := mustLoad(t, s)
				if n := len(snap.Organisations) + len(snap.Endpoints) + len(snap.Accounts) + len(snap.Challenges); n != 0 || snap.Revision != 0 {
					t.Fatalf("after failed Apply: %d records at revision %d, want none at 0", n, snap.Revision)
				}
			})
		}
	})
	t.Run("CancelledContextWritesNothing", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := s.Apply(ctx, sampleBatch()); !errors.Is(err, context.Canceled) {
			t.Fatalf("Apply(cancelled) = %v, want context.Canceled", err)
		}
		if _, err := s.Load(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Load(cancelled) = %v, want context.Canceled", err)
		}
		if snap := mustLoad(t, s); len(snap.Organisations) != 0 {
			t.Fatalf("after cancelled Apply: %d organisations, want 0", len(snap.Organisations))
		}
	})
	t.Run("EmptyBatchIsNoOp", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		mustApply(t, s, directory.Batch{})
		if rev := mustRevision(t, s); rev != 0 {
			t.Fatalf("Revision after empty Apply = %d, want 0", rev)
		}
	})
	t.Run("RevisionCountsApplies", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		for i := 1; i <= 3; i++ {
			mustApply(t, s, directory.Batch{Organisations: []directory.Organisation{org(fmt.Sprintf("B8%04d", i))}})
			if rev := mustRevision(t, s); rev != uint64(i) {
				t.Fatalf("Revision after %d Applies = %d, want %d", i, rev, i)
			}
		}
		if rev := mustLoad(t, s).Revision; rev != 3 {
			t.Fatalf("Load().Revision = %d, want 3", rev)
		}
	})
	t.Run("ConcurrentApply", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		const writers, each = 8, 10
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					o := org(fmt.Sprintf("C%02d%03d", w, i))
					if err := s.Apply(t.Context(), directory.Batch{Organisations: []directory.Organisation{o}}); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("concurrent Apply: %v", err)
		}
		snap := mustLoad(t, s)
		if len(snap.Organisations) != writers*each || snap.Revision != writers*each {
			t.Fatalf("after %d concurrent Applies: %d organisations at revision %d", writers*each, len(snap.Organisations), snap.Revision)
		}
	})
	t.Run("LargeBatch", func(t *testing.T) {
		t.Parallel()
		// The national GP practice file is ~12,000 rows, imported as one batch.
		s := open(t)
		var b directory.Batch
		for i := range 12500 {
			b.Organisations = append(b.Organisations, org(fmt.Sprintf("L%05d", i)))
		}
		mustApply(t, s, b)
		snap := mustLoad(t, s)
		if len(snap.Organisations) != len(b.Organisations) {
			t.Fatalf("Load after large batch: %d organisations, want %d", len(snap.Organisations), len(b.Organisations))
		}
	})
	t.Run("KeysAreExact", func(t *testing.T) {
		t.Parallel()
		// The directory normalises keys; the store must not fold or trim them.
		s := open(t)
		mustApply(t, s, directory.Batch{Accounts: []directory.Account{{Username: "Alice"}, {Username: "alice"}, {Username: "alice:x"}}})
		if got := mustLoad(t, s).Accounts; len(got) != 3 {
			t.Fatalf("accounts Alice, alice, alice:x stored as %d records, want 3", len(got))
		}
	})
}

var ts = time.Date(2026, 3, 1, 9, 30, 0, 123456789, time.UTC)

func org(ods string) directory.Organisation {
	return directory.Organisation{ODS: ods, Name: "Practice " + ods, Status: directory.OrgActive, Source: directory.SourceODS, ImportedAt: ts}
}

// sampleBatch uses every field, so a store that drops one fails.
func sampleBatch() directory.Batch {
	closed := org("A81002")
	closed.Name = `St. Mary's, "Old" Surgery`
	closed.Status, closed.ClosedOn, closed.Successor = directory.OrgClosed, ts.AddDate(0, -1, 0), "A81001"
	closed.Address, closed.Postcode, closed.Phone, closed.Kind = []string{"1 High Street", "Leeds"}, "LS1 1AA", "01632 960000", "gp-practice"
	return directory.Batch{
		Organisations: []directory.Organisation{org("A81001"), closed},
		Endpoints: []directory.Endpoint{
			{ID: "ep-1", Address: "gp.a81001@nhs.example", ODS: "A81001", Purpose: "referrals",
				NextHop:      directory.NextHop{Kind: directory.HopHost, Host: "mx.nhs.example:25", TLS: directory.TLSVerified},
				Certificates: [][]byte{{0x30, 0x82, 0x01}, {0x30, 0x03}}, TLSOnly: true, TLSOnlyEvidence: "CAB change 1234",
				FaxNumbers: []string{"+441632960001"}, Contacts: []string{"Practice manager 01632 960000"},
				Status: directory.StatusVerified, Redirect: "other@nhs.example",
				Verification: directory.Verification{By: "admin", At: ts, Method: directory.MethodAttestation, Evidence: "phoned the practice", Expires: ts.AddDate(1, 0, 0)}},
			{ID: "ep-2", Address: "nhs.example", ODS: "A81002", NextHop: directory.NextHop{Kind: directory.HopMX},
				Status: directory.StatusPending, StatusReason: "awaiting code"},
		},
		Accounts: []directory.Account{{Username: "gp1", PasswordHash: "$2a$10$abcdefghijklmnopqrstuv", ODS: "A81001",
			Addresses: []string{"gp.a81001@nhs.example"}, Disabled: false}},
		Challenges: []directory.Challenge{{EndpointID: "ep-2", Address: "nhs.example", CodeHash: "$2a$10$x",
			Created: ts, Expires: ts.Add(72 * time.Hour), Attempts: 1, By: "admin"}},
	}
}

func mustApply(t *testing.T, s directory.Store, b directory.Batch) {
	t.Helper()
	if err := s.Apply(t.Context(), b); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func mustLoad(t *testing.T, s directory.Store) directory.Snapshot {
	t.Helper()
	snap, err := s.Load(t.Context())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return snap
}

func mustRevision(t *testing.T, s directory.Store) uint64 {
	t.Helper()
	rev, err := s.Revision(t.Context())
	if err != nil {
		t.Fatalf("Revision: %v", err)
	}
	return rev
}

// same compares records as JSON, sorted by key, so time zones and monotonic
// clock readings do not matter but every field does.
func same[T any](t *testing.T, what string, got, want []T, key func(T) string) {
	t.Helper()
	enc := func(recs []T) string {
		recs = slices.Clone(recs)
		slices.SortFunc(recs, func(a, b T) int { return strings.Compare(key(a), key(b)) })
		var lines []string
		for _, r := range recs {
			j, err := json.Marshal(r)
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			lines = append(lines, string(j))
		}
		return strings.Join(lines, "\n")
	}
	if g, w := enc(got), enc(want); g != w {
		t.Errorf("%s loaded:\n%s\nwant:\n%s", what, g, w)
	}
}
