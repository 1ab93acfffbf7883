package relay

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"nhsrelay/relay/queue"
)

func schedMessage(id string, states map[queue.State]time.Time) queue.Message {
	m := queue.Message{ID: id}
	for st, at := range states {
		m.Recipients = append(m.Recipients, queue.Recipient{Address: string(st) + "@x.example", State: st, NextAttempt: at})
	}
	return m
}

// The scheduler's heap holds exactly the pending entries not in flight,
// ordered by due time (then ID), whatever sequence of schedule, inflight
// and forget calls put them there; held recipients count toward due and
// the held gauge; a message with only final recipients is forgotten.
func TestSchedulerHeap(t *testing.T) {
	t.Parallel()
	r := &Relay{pending: map[string]*entry{}}
	base := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		id := fmt.Sprintf("M%04d", rng.IntN(300))
		at := base.Add(time.Duration(rng.IntN(1000)) * time.Minute)
		r.mu.Lock()
		switch op := i % 5; {
		case op == 0 && r.pending[id] != nil: // an attempt starts
			e := r.pending[id]
			e.inflight = true
			r.placeLocked(e)
		case op == 1 && r.pending[id] != nil: // and ends
			e := r.pending[id]
			e.inflight = false
			r.placeLocked(e)
		case op == 2:
			r.forgetLocked(id)
		}
		r.mu.Unlock()
		switch i % 7 {
		case 0:
			r.schedule(schedMessage(id, map[queue.State]time.Time{queue.Delivered: at, queue.Failed: at}))
		case 1:
			r.schedule(schedMessage(id, map[queue.State]time.Time{queue.Held: at, queue.Delivered: base}))
		default:
			r.schedule(schedMessage(id, map[queue.State]time.Time{queue.Queued: at, queue.Held: at.Add(time.Hour)}))
		}
	}

	inHeap := 0
	for id, e := range r.pending {
		if e.id != id {
			t.Fatalf("entry %q filed under %q", e.id, id)
		}
		switch {
		case e.inflight && e.index >= 0:
			t.Fatalf("entry %s is in flight and in the heap", id)
		case !e.inflight && (e.index < 0 || r.due[e.index] != e):
			t.Fatalf("entry %s waits but is not in the heap at its index", id)
		case !e.inflight:
			inHeap++
		}
		if e.held < 1 {
			t.Fatalf("entry %s counts %d held recipients, want at least 1", id, e.held)
		}
	}
	if inHeap != len(r.due) {
		t.Fatalf("heap holds %d entries, %d pending entries wait", len(r.due), inHeap)
	}
	var last *entry
	for len(r.due) > 0 {
		e := heap.Pop(&r.due).(*entry)
		if last != nil && (e.due.Before(last.due) || e.due.Equal(last.due) && e.id < last.id) {
			t.Fatalf("popped %s (%v) after %s (%v): not in due order", e.id, e.due, last.id, last.due)
		}
		last = e
	}
}

// BenchmarkKickLargeQueue measures a Kick's dispatch with a large queue of
// messages not yet due: with the heap it looks at the earliest only.
func BenchmarkKickLargeQueue(b *testing.B) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	r := &Relay{pending: map[string]*entry{}, cfg: Config{Now: func() time.Time { return now }}, slots: make(chan struct{}, 1)}
	for i := range 100_000 {
		r.schedule(schedMessage(fmt.Sprintf("M%06d", i), map[queue.State]time.Time{queue.Queued: now.Add(time.Hour + time.Duration(i)*time.Second)}))
	}
	for b.Loop() {
		r.dispatch(b.Context())
	}
}
