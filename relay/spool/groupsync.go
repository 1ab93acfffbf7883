package spool

import (
	"sync"
)

// groupSync shares fsyncs (of the folder, or of a segment file) among
// concurrent writers. A caller
// needs an fsync that starts after it calls sync (its link is done by then);
// one such fsync covers every caller waiting when it starts, so under load
// N writers cost about two fsyncs instead of N.
//
// A failed fsync is sticky: after fsync reports an error the kernel may have
// dropped the dirty pages, so a later fsync that succeeds proves nothing
// (PostgreSQL's "fsyncgate", 2018). Every later sync returns the first
// error and the spool must be reopened by restarting.
type groupSync struct {
	do      func() error // the fsync: durable.SyncDir of the folder, fdatasync of a segment
	mu      sync.Mutex
	cond    *sync.Cond
	started uint64 // fsyncs begun
	done    uint64 // fsyncs finished; fsync k covers callers that arrived before it began
	running bool
	failed  error  // first fsync error, sticky
	failGen uint64 // the fsync that failed
}

func (g *groupSync) sync() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cond == nil {
		g.cond = sync.NewCond(&g.mu)
	}
	// A running fsync may have begun before our link: we need the next one.
	target := g.started + 1
	for g.done < target && g.failed == nil {
		if g.running {
			g.cond.Wait()
			continue
		}
		// No fsync running and ours not done: started == target-1, lead it.
		g.started++
		g.running = true
		g.mu.Unlock()
		err := g.do()
		g.mu.Lock()
		g.running = false
		g.done = g.started
		if err != nil && g.failed == nil {
			g.failed, g.failGen = err, g.started
		}
		g.cond.Broadcast()
	}
	if g.failed != nil && g.failGen <= target {
		return g.failed
	}
	return nil // fsync number target (or a later one) succeeded
}
