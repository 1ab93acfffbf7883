package relay

import (
	"time"

	"nhsrelay/relay/maildir"
)

const (
	// pruneEvery is how often Run removes old Maildir delivered markers.
	pruneEvery = 24 * time.Hour
	// markerMargin is taken off the cutoff for clock differences between
	// the relay and the file system, which stamps the markers.
	markerMargin = 24 * time.Hour
)

// maybePruneMarkers starts a walk that removes the Maildir delivered
// markers (relay/maildir) no queued message can need any more, when one is
// due by the configured clock: the first time Run looks for work, then
// about once a day. The first is at start-up, so that a relay restarted
// more often than daily still prunes, and after New's recovery, so that
// the oldest queued message is known: a relay that was down for days holds
// messages older than now − GiveUpAfter, which have not been given up yet
// and whose markers must stay.
//
// The cutoff is taken here, before Run starts any attempt; the walk runs
// beside delivery (it may take a while on a big mail store), one at a
// time, and Run waits for it when it stops. A failure is logged, never
// fatal: markers only cost disk space, and the next day tries again.
func (r *Relay) maybePruneMarkers() {
	if r.cfg.MaildirRoot == "" {
		return
	}
	now := r.cfg.Now()
	if !r.nextPrune.IsZero() && now.Before(r.nextPrune) {
		return
	}
	if !r.pruning.CompareAndSwap(false, true) {
		return // the last walk is still going; look again at the next wake-up
	}
	r.nextPrune = now.Add(pruneEvery)
	cutoff := r.markerCutoff(now)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer r.pruning.Store(false)
		n, err := maildir.Prune(r.cfg.MaildirRoot, cutoff)
		if err != nil {
			r.log.Error("prune Maildir delivered markers", "removed", n, "cutoff", cutoff, "err", err)
			return
		}
		r.log.Info("Maildir delivered markers pruned", "removed", n, "cutoff", cutoff)
	}()
}

// markerCutoff is the time before which no delivered marker can be needed
// (maildir.Prune's rule):
//
//	min(oldest queued Received, now − GiveUpAfter) − markerMargin
//
// A marker is what stops a retry from delivering its key (queue ID +
// mailbox) twice, so it must outlive every queued message that could still
// deliver that key; it is written after its message was received, so the
// Received time of the oldest message still queued bounds them all.
// now − GiveUpAfter also covers a message whose record is being committed
// by Submit and is not scheduled yet.
func (r *Relay) markerCutoff(now time.Time) time.Time {
	cutoff := now.Add(-r.cfg.GiveUpAfter)
	r.mu.Lock()
	for _, e := range r.pending {
		if e.received.Before(cutoff) {
			cutoff = e.received
		}
	}
	r.mu.Unlock()
	return cutoff.Add(-markerMargin)
}
