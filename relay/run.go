package relay

import (
	"context"
	"sort"
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
// new attempt, waits for those in flight to finish, closes idle
// connections and returns nil.
func (r *Relay) Run(ctx context.Context) error {
	// In-flight attempts must finish even though ctx ends: they run on a
	// context that carries ctx's values but not its cancellation, each
	// bounded by AttemptTimeout.
	work := context.WithoutCancel(ctx)
	reap := time.NewTicker(max(r.cfg.IdleTimeout/2, 10*time.Millisecond))
	defer reap.Stop()
	for {
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
// oldest ID first, and returns how long to sleep before looking again.
func (r *Relay) dispatch(ctx context.Context) time.Duration {
	now := r.cfg.Now()
	wait := time.Minute
	r.mu.Lock()
	var due []string
	for id, e := range r.pending {
		if e.due.IsZero() || r.inflight[id] {
			continue
		}
		if d := e.due.Sub(now); d > 0 {
			wait = min(wait, d)
			continue
		}
		due = append(due, id)
	}
	r.mu.Unlock()
	sort.Strings(due) // IDs sort by arrival
	for _, id := range due {
		select {
		case r.slots <- struct{}{}:
		default:
			return wait // a finishing attempt kicks the loop
		}
		r.mu.Lock()
		r.inflight[id] = true
		r.mu.Unlock()
		r.wg.Add(1)
		go func() {
			defer func() {
				r.mu.Lock()
				delete(r.inflight, id)
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
	return max(wait, 10*time.Millisecond)
}

// queueStats counts queued and held messages and the age of the oldest.
func (r *Relay) queueStats() (n int, oldest time.Duration) {
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.pending {
		if age := now.Sub(e.received); age > oldest {
			oldest = age
		}
	}
	return len(r.pending), oldest
}
