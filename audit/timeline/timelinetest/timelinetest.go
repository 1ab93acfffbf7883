// Package timelinetest is the contract suite every timeline.Store runs.
package timelinetest

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"nhsrelay/audit"
	"nhsrelay/audit/timeline"
)

// Run checks a timeline.Store. open returns a new, empty store whose
// cleanup it registers with t.
func Run(t *testing.T, open func(t *testing.T) timeline.Store) {
	t.Helper()
	for _, tc := range []struct {
		name string
		f    func(t *testing.T, s timeline.Store)
	}{
		{"EmptyPosition", testEmptyPosition},
		{"AddThenFind", testAddThenFind},
		{"FindOrderAndSince", testFindOrderAndSince},
		{"AddIsIdempotentBySeq", testIdempotent},
		{"Reset", testReset},
		{"ConcurrentAddAndFind", testConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.f(t, open(t))
		})
	}
}

var t0 = time.Date(2026, 12, 8, 14, 2, 0, 0, time.UTC)

func event(seq uint64, queueID, action string, f audit.Fields) timeline.Indexed {
	e := timeline.Event{Seq: seq, Time: t0.Add(time.Duration(seq) * time.Second), Actor: "system", Action: action,
		QueueID: queueID, Outcome: "ok", Words: "words", Fields: f}
	return timeline.Indexed{Event: e, Keys: timeline.Keys(e)}
}

func pos(seq uint64) timeline.Position {
	return timeline.Position{Seq: seq, Offset: int64(seq) * 100, Hash: "h"}
}

func testEmptyPosition(t *testing.T, s timeline.Store) {
	p, err := s.Position(context.Background())
	if err != nil || p != (timeline.Position{}) {
		t.Fatalf("Position of an empty store = %+v, %v; want zero", p, err)
	}
	evs, err := s.Find(context.Background(), timeline.QueueKey("none"), time.Time{})
	if err != nil || len(evs) != 0 {
		t.Fatalf("Find on an empty store = %v, %v", evs, err)
	}
}

func testAddThenFind(t *testing.T, s timeline.Store) {
	ctx := context.Background()
	in := event(1, "Q1", "accepted", audit.Fields{"message_id": "<a@b>", "rcpts": "x@nhs.example,y@nhs.example"})
	if err := s.Add(ctx, []timeline.Indexed{in}, pos(1)); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{timeline.QueueKey("Q1"), timeline.MessageIDKey("a@b"), timeline.RcptKey("Y@nhs.example")} {
		evs, err := s.Find(ctx, key, time.Time{})
		if err != nil || len(evs) != 1 || !reflect.DeepEqual(evs[0], in.Event) {
			t.Errorf("Find(%q) = %+v, %v; want the event back whole", key, evs, err)
		}
	}
	if p, _ := s.Position(ctx); p != pos(1) {
		t.Errorf("Position = %+v, want %+v", p, pos(1))
	}
}

func testFindOrderAndSince(t *testing.T, s timeline.Store) {
	ctx := context.Background()
	// Added out of order, in two batches: Find returns Seq order.
	s.Add(ctx, []timeline.Indexed{event(12, "Q1", "delivered", nil), event(3, "Q1", "accepted", nil)}, pos(12))
	s.Add(ctx, []timeline.Indexed{event(7, "Q1", "deferred", nil), event(8, "Q2", "accepted", nil)}, pos(13))
	evs, err := s.Find(ctx, timeline.QueueKey("Q1"), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, e := range evs {
		seqs = append(seqs, e.Seq)
	}
	if !reflect.DeepEqual(seqs, []uint64{3, 7, 12}) {
		t.Errorf("Find(Q1) seqs = %v, want [3 7 12]", seqs)
	}
	evs, _ = s.Find(ctx, timeline.QueueKey("Q1"), t0.Add(7*time.Second))
	if len(evs) != 2 || evs[0].Seq != 7 {
		t.Errorf("Find(Q1, since seq 7's time) = %d events, want 2 from seq 7", len(evs))
	}
	if evs, _ := s.Find(ctx, timeline.QueueKey("Q"), time.Time{}); len(evs) != 0 {
		t.Errorf("Find(Q) matched %d events of Q1/Q2: keys must match whole", len(evs))
	}
}

func testIdempotent(t *testing.T, s timeline.Store) {
	ctx := context.Background()
	in := event(5, "Q1", "accepted", nil)
	s.Add(ctx, []timeline.Indexed{in}, pos(5))
	s.Add(ctx, []timeline.Indexed{in, in}, pos(5))
	if evs, _ := s.Find(ctx, timeline.QueueKey("Q1"), time.Time{}); len(evs) != 1 {
		t.Errorf("an event added three times is found %d times", len(evs))
	}
}

func testReset(t *testing.T, s timeline.Store) {
	ctx := context.Background()
	s.Add(ctx, []timeline.Indexed{event(1, "Q1", "accepted", nil)}, pos(1))
	if err := s.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if evs, _ := s.Find(ctx, timeline.QueueKey("Q1"), time.Time{}); len(evs) != 0 {
		t.Errorf("after Reset, %d events found", len(evs))
	}
	if p, _ := s.Position(ctx); p != (timeline.Position{}) {
		t.Errorf("after Reset, Position = %+v", p)
	}
}

func testConcurrent(t *testing.T, s timeline.Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 25 {
				seq := uint64(w*25 + i + 1)
				if err := s.Add(ctx, []timeline.Indexed{event(seq, "Q", "accepted", nil)}, pos(seq)); err != nil {
					t.Error(err)
				}
				if _, err := s.Find(ctx, timeline.QueueKey("Q"), time.Time{}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if evs, _ := s.Find(ctx, timeline.QueueKey("Q"), time.Time{}); len(evs) != 100 {
		t.Errorf("%d events after 100 concurrent adds", len(evs))
	}
}
