package relay

import (
	"container/heap"
	"context"
	"time"
)

// Kick wakes the delivery loop to look for due work now (after Submit,
// Retry, or a test advancing its clock).
func (r *Relay) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run delivers queued messages until ctx is cancelled; then it starts no
// new attempt, waits for those in flight (and a marker prune) to finish,
// closes idle connections and returns nil. About once a day, and once at
// start-up, it removes the Maildir delivered markers that no queued
// message can need (maybePruneMarkers).
func (r *Relay) Run(ctx context.Context) error {
	// In-flight attempts must finish even though ctx ends: they run on a
	// context that carries ctx's values but not its cancellation, each
	// bounded by AttemptTimeout.
	work := context.WithoutCancel(ctx)
	reap := time.NewTicker(max(r.cfg.IdleTimeout/2, 10*time.Millisecond))
	defer reap.Stop()
	for {
		r.maybePruneMarkers()
		wait := r.dispatch(work)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			r.wg.Wait()
			r.closeIdle(0)
			return nil
		case <-r.kick:
		case <-timer.C:
		case <-reap.C:
			r.closeIdle(r.cfg.IdleTimeout)
		}
		timer.Stop()
	}
}

// dispatch starts an attempt for every due message while slots are free,
// earliest due first, and returns how long to sleep before looking again.
// The due messages come off a min-heap, so a Kick costs O(log n) per
// message started, not a scan of the queue.
func (r *Relay) dispatch(ctx context.Context) time.Duration {
	now := r.cfg.Now()
	for {
		r.mu.Lock()
		if len(r.due) == 0 {
			r.mu.Unlock()
			return time.Minute
		}
		if d := r.due[0].due.Sub(now); d > 0 {
			r.mu.Unlock()
			return max(min(d, time.Minute), 10*time.Millisecond)
		}
		select {
		case r.slots <- struct{}{}:
		default:
			r.mu.Unlock()
			return time.Minute // a finishing attempt kicks the loop
		}
		e := heap.Pop(&r.due).(*entry)
		e.inflight = true
		id := e.id
		r.mu.Unlock()
		r.wg.Add(1)
		go func() {
			defer func() {
				r.mu.Lock()
				if e := r.pending[id]; e != nil { // rescheduled by finish, or still due
					e.inflight = false
					r.placeLocked(e)
				}
				r.mu.Unlock()
				<-r.slots
				r.wg.Done()
				r.Kick()
			}()
			actx, cancel := context.WithTimeout(ctx, r.cfg.AttemptTimeout)
			defer cancel()
			r.attempt(actx, id)
		}()
	}
}

// queueStats counts queued messages, held recipients and the age of the
// oldest message. It walks the queue: it is for metric scrapes, not the
// delivery path.
func (r *Relay) queueStats() (n, held int, oldest time.Duration) {
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.pending {
		if age := now.Sub(e.received); age > oldest {
			oldest = age
		}
		held += e.held
	}
	return len(r.pending), held, oldest
}
