package relay

import (
	"container/heap"
	"time"
)

// entry is what the scheduler keeps in memory for a message with
// recipients still Queued or Held.
type entry struct {
	id       string
	due      time.Time // earliest NextAttempt of its Queued and Held recipients
	received time.Time
	held     int  // recipients Held, for the held gauge
	inflight bool // an attempt is running; not in the heap meanwhile
	index    int  // position in Relay.due; -1 when not in it
}

// dueHeap orders entries by due time, then by ID (IDs sort by arrival),
// so dispatch finds the next due message in O(log n) instead of scanning
// the queue on every Kick.
type dueHeap []*entry

func (h dueHeap) Len() int { return len(h) }
func (h dueHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].id < h[j].id
}
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *dueHeap) Push(x any) {
	e := x.(*entry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *dueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.index = -1
	*h = old[:len(old)-1]
	return e
}

// placeLocked puts e where it belongs after its due time or inflight flag
// changed: in the heap when it waits for an attempt, out of it while one
// runs. The caller holds r.mu.
func (r *Relay) placeLocked(e *entry) {
	switch {
	case !e.inflight && e.index >= 0:
		heap.Fix(&r.due, e.index)
	case !e.inflight:
		heap.Push(&r.due, e)
	case e.index >= 0:
		heap.Remove(&r.due, e.index)
	}
}

// forgetLocked drops id from the scheduler. The caller holds r.mu.
func (r *Relay) forgetLocked(id string) {
	e, ok := r.pending[id]
	if !ok {
		return
	}
	if e.index >= 0 {
		heap.Remove(&r.due, e.index)
	}
	delete(r.pending, id)
}
