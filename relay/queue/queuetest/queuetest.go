package queuetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"nhsrelay/relay/queue"
)

// Run checks a queue.Store. open returns a new, empty store whose cleanup
// it registers with t. reopen closes s and returns a store over the same
// data, as a restarted process would see it.
func Run(t *testing.T, open func(t *testing.T) queue.Store, reopen func(t *testing.T, s queue.Store) queue.Store) {
	t.Helper()
	for _, tc := range []struct {
		name string
		f    func(t *testing.T, open func(t *testing.T) queue.Store, reopen func(*testing.T, queue.Store) queue.Store)
	}{
		{"GetMissing", testGetMissing},
		{"AddThenGet", testAddThenGet},
		{"AddExists", testAddExists},
		{"AddEmptyID", testAddEmptyID},
		{"UpdateAtomic", testUpdateAtomic},
		{"UpdateFnErrorWritesNothing", testUpdateFnError},
		{"UpdateMissing", testUpdateMissing},
		{"UpdateCannotChangeID", testUpdateID},
		{"DeleteThenGet", testDelete},
		{"DeleteMissing", testDeleteMissing},
		{"ListOrdered", testListOrdered},
		{"ListEmpty", testListEmpty},
		{"ConcurrentAdd", testConcurrentAdd},
		{"CanceledContext", testCanceled},
		{"PersistsAcrossReopen", testReopen},
		{"DSNRequestKept", testDSNRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.f(t, open, reopen)
		})
	}
}

// sample returns a message with every field set, so a lost field shows.
func sample(id string) queue.Message {
	at := time.Date(2026, 3, 4, 9, 30, 0, 123456789, time.UTC)
	return queue.Message{
		ID: id, From: "gp.a81001@nhs.example", Account: "a81001", ClientIP: "127.0.0.1",
		Inbound: true, Received: at, Size: 4096, Ret: "HDRS", EnvID: "QQ314159",
		Recipients: []queue.Recipient{
			{Address: "cardio.rxx@nhs.example", State: queue.Queued, NextAttempt: at.Add(time.Minute),
				Notify: []string{"SUCCESS", "FAILURE"}, ORcpt: "rfc822;cardio.rxx@nhs.example"},
			{Address: "ward7.ryy@nhs.example", State: queue.Held, Attempts: 3,
				NextAttempt: at.Add(time.Hour), LastError: "no valid certificate",
				LastCode: "4.7.5", DelayNotified: true},
		},
	}
}

func mustAdd(t *testing.T, s queue.Store, m queue.Message) {
	t.Helper()
	if err := s.Add(t.Context(), m); err != nil {
		t.Fatalf("Add(%s): %v", m.ID, err)
	}
}

func mustGet(t *testing.T, s queue.Store, id string) queue.Message {
	t.Helper()
	m, err := s.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return m
}

func equal(t *testing.T, got, want queue.Message) {
	t.Helper()
	// Times come back through JSON: compare instants, not monotonic clocks or locations.
	norm := func(m queue.Message) queue.Message {
		m.Received = m.Received.UTC()
		m.Recipients = append([]queue.Recipient(nil), m.Recipients...)
		for i := range m.Recipients {
			m.Recipients[i].NextAttempt = m.Recipients[i].NextAttempt.UTC()
		}
		return m
	}
	if g, w := norm(got), norm(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("message = %+v\nwant      %+v", g, w)
	}
}

func testGetMissing(t *testing.T, open func(*testing.T) queue.Store, _ func(*testing.T, queue.Store) queue.Store) {
	if _, err := open(t).Get(t.Context(), "nope"); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("Get(missing) error = %v, want ErrNotFound", err)
	}
}

func testAddThenGet(t *testing.T, open func(*testing.T) queue.Store, _ func(*testing.T, queue.Store) queue.Store) {
	s := open(t)
	m := sample("Q1")
	mustAdd(t, s, m)
	equal(t, mustGet(t, s, "Q1"), m)
	// The store keeps its own copy: changing ours afterwards changes nothing.
	m.Recipients[0].Attempts = 99
	if got := mustGet(t, s, "Q1"); got.Recipients[0].Attempts != 0 {
		t.Fatal("store shares the caller's Recipients slice")
	}
}

func testAddExists(t *testing.T, open func(*testing.T) queue.Store, _ func(*testing.T, queue.Store) queue.Store) {
	s := open(t)
	first := sample("Q1")
	mustAdd(t, s, first)
	second := sample("Q1")
	second.From = "someone.else@nhs.example"
	if err := s.Add(t.Context(), second); !errors.Is(err, queue.ErrExists) {
		t.Fatalf("Add(existing) error = %v, want ErrExists", err)
	}
	equal(t, mustGet(t, s, "Q1"), first)
}

func testAddEmptyID(t *testing.T, open func(*testing.T) queue.Store, _ func(*testing.T, queue.Store) queue.Store) {
	if err := open(t).Add(t.Context(), sample("")); err == nil {
		t.Fatal("Add with an empty ID succeeded")
	}
}

func testUpdateAtomic(t *testing.T, open func(*testing.T) queue.Store, _ func(*testing.T, queue.Store) queue.Store) {
	s := open(t)
	mustAdd(t, s, sample("Q1"))
	// Concurrent read-modify-write: no increment may be lost.
	const workers, each = 8, 10
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				err := s.Update(t.Context(), "Q1", func(m *queue.Message) error {
					m.Recipients[0].Attempts++
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	got := mustGet(t, s, "Q1")
	if got.Recipients[0].Attempts != workers*each {
		t.Fatalf("Attempts = %d after %d concurrent increments", got.Recipients[0].Attempts, workers*each)
	}
	want := sample("Q1")
	want.Recipients[0].Attempts = workers * each
	equal(t, got, want)
}

func testUpdateFnError(t *testing.T, open func(*testing.T) queue.Store, _ func(*testing.T, queue.Store) queue.Store) {
	s := open(t)
	mustAdd(t, s, sample("Q1"))
	refuse := errors.New("refused by caller")
	err := s.Update(t.Context(), "Q1", func(m *queue.Message) error {
		m.Recipients[0].State = queue.Delivered // changed, then refused: must not stick
		m.From = "changed@nhs.example"
		return refuse
	})
	if !errors.Is(err, refuse) {
		t.Fatalf("Update error = %v, want the fn's error", err)
	}
	equal(t, mustGet(t, s, "Q1"), sample("Q1"))
}

func testUpdateMissing(t *testing.T, open func(*testing.T) queue.Store, _ func(*testing.T, queue.Store) queue.Store) {
	s := open(t)
	called := false
	err := s.Update(t.Context(), "nope", func(*queue.Message) error { called = true; return nil })
	if !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("Update(missing) error = %v, want ErrNotFound", err)
	}
	if called {
		t.Fatal("Update(missing) called fn")
	}
	if _, err := s.Get(t.Context(), "nope"); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("Update(missing) created a record: Get error = %v", err)
	}
}

func testUpdateID(t *testing.T, open func(*testing.T) queue.Store, _ func(*testing.T, queue.Store) queue.Store) {
	s := open(t)
	mustAdd(t, s, sample("Q1"))
	err := s.Update(t.Context(), "Q1", func(m *queue.Message) error { m.ID = "Q2"; return nil })
	if err == nil {
		t.Fatal("Update that changed the ID succeeded")
	}
	equal(t, mustGet(t, s, "Q1"), sample("Q1"))
	if _, err := s.Get(t.Context(), "Q2"); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("Get(Q2) error = %v, want ErrNotFound", err)
	}
}

func testDelete(t *testing.T, open func(*testing.T) queue.Store, _ func(*testing.T, queue.Store) queue.Store) {
	s := open(t)
	mustAdd(t, s, sample("Q1"))
	mustAdd(t, s, sample("Q2"))
	if err := s.Delete(t.Context(), "Q1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Get(t.Context(), "Q1"); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("Get after Delete: error = %v, want ErrNotFound", err)
	}
	if l, err := s.List(t.Context()); err != nil || len(l) != 1 || l[0].ID != "Q2" {
		t.Fatalf("List after Delete = %d messages, %v; want [Q2]", len(l), err)
	}
	mustAdd(t, s, sample("Q1")) // the ID is free again
}

func testDeleteMissing(t *testing.T, open func(*testing.T) queue.Store, _ func(*testing.T, queue.Store) queue.Store) {
	if err := open(t).Delete(t.Context(), "nope"); err != nil {
		t.Fatalf("Delete(missing) = %v, want nil", err)
	}
}

func testListOrdered(t *testing.T, open func(*testing.T) queue.Store, _ func(*testing.T, queue.Store) queue.Store) {
	s := open(t)
	ids := []string{"b", "a", "c10", "c2", "B"}
	for _, id := range ids {
		mustAdd(t, s, sample(id))
	}
	l, err := s.List(t.Context())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var got []string
	for _, m := range l {
		got = append(got, m.ID)
	}
	if want := []string{"B", "a", "b", "c10", "c2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("List IDs = %q, want %q (bytewise order)", got, want)
	}
	equal(t, l[1], sample("a"))
}

func testListEmpty(t *testing.T, open func(*testing.T) queue.Store, _ func(*testing.T, queue.Store) queue.Store) {
	if l, err := open(t).List(t.Context()); err != nil || len(l) != 0 {
		t.Fatalf("List(empty) = %d messages, %v; want none", len(l), err)
	}
}

func testConcurrentAdd(t *testing.T, open func(*testing.T) queue.Store, _ func(*testing.T, queue.Store) queue.Store) {
	s := open(t)
	const workers, each = 8, 25
	var wg sync.WaitGroup
	var mu sync.Mutex
	exists := 0
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if err := s.Add(t.Context(), sample(fmt.Sprintf("w%d-%03d", w, i))); err != nil {
					t.Error(err)
				}
				// Every worker also races for one shared ID: exactly one wins.
				if i == 0 {
					err := s.Add(t.Context(), sample("shared"))
					if errors.Is(err, queue.ErrExists) {
						mu.Lock()
						exists++
						mu.Unlock()
					} else if err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	l, err := s.List(t.Context())
	if err != nil || len(l) != workers*each+1 {
		t.Fatalf("List = %d messages, %v; want %d", len(l), err, workers*each+1)
	}
	if exists != workers-1 {
		t.Fatalf("%d of %d racing Adds of one ID got ErrExists, want %d", exists, workers, workers-1)
	}
}

func testCanceled(t *testing.T, open func(*testing.T) queue.Store, _ func(*testing.T, queue.Store) queue.Store) {
	s := open(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Add(ctx, sample("Q1")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Add(canceled ctx) error = %v, want context.Canceled", err)
	}
	if _, err := s.Get(t.Context(), "Q1"); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("Add with a canceled context stored the message: Get error = %v", err)
	}
}

func testReopen(t *testing.T, open func(*testing.T) queue.Store, reopen func(*testing.T, queue.Store) queue.Store) {
	s := open(t)
	mustAdd(t, s, sample("Q1"))
	mustAdd(t, s, sample("Q2"))
	mustAdd(t, s, sample("Q3"))
	if err := s.Update(t.Context(), "Q2", func(m *queue.Message) error {
		m.Recipients[0].State = queue.Delivered
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(t.Context(), "Q3"); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s)
	equal(t, mustGet(t, s, "Q1"), sample("Q1"))
	want := sample("Q2")
	want.Recipients[0].State = queue.Delivered
	equal(t, mustGet(t, s, "Q2"), want)
	if l, err := s.List(t.Context()); err != nil || len(l) != 2 {
		t.Fatalf("List after reopen = %d messages, %v; want 2", len(l), err)
	}
}

// testDSNRequest: each recipient's NOTIFY and ORCPT and the message's RET
// and ENVID (RFC 3461) survive Add, Update and a reopen, recipient by
// recipient.
func testDSNRequest(t *testing.T, open func(t *testing.T) queue.Store, reopen func(*testing.T, queue.Store) queue.Store) {
	ctx := context.Background()
	s := open(t)
	m := sample("DSN1")
	m.Recipients[1].Notify = []string{"NEVER"}
	if err := s.Add(ctx, m); err != nil {
		t.Fatal(err)
	}
	err := s.Update(ctx, m.ID, func(cur *queue.Message) error {
		cur.Recipients[0].Attempts++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s)
	got, err := s.Get(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Ret != "HDRS" || got.EnvID != "QQ314159" {
		t.Errorf("Get: RET %q ENVID %q, want HDRS QQ314159", got.Ret, got.EnvID)
	}
	if n := got.Recipients[0].Notify; !reflect.DeepEqual(n, []string{"SUCCESS", "FAILURE"}) || got.Recipients[0].ORcpt != "rfc822;cardio.rxx@nhs.example" {
		t.Errorf("Get: first recipient NOTIFY %v ORCPT %q", n, got.Recipients[0].ORcpt)
	}
	if n := got.Recipients[1].Notify; !reflect.DeepEqual(n, []string{"NEVER"}) || got.Recipients[1].ORcpt != "" {
		t.Errorf("Get: second recipient NOTIFY %v ORCPT %q, want [NEVER] and none", n, got.Recipients[1].ORcpt)
	}
}
