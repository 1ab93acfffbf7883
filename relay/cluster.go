package relay

import (
	"context"
	"fmt"
	"time"
)

// leaseMargin is how much longer than an attempt (bounded by
// AttemptTimeout) a delivery lease lasts, for the writes after it.
const leaseMargin = 5 * time.Second

// Rescan schedules every queued message this node does not know of yet:
// in a cluster, mail another node accepted, or a crashed node's messages
// once their leases expire. cmd runs it periodically in cluster mode; each
// attempt takes the message's lease first (Config.Leases), so a message
// known to several nodes is still delivered by one at a time, and the
// Maildir's delivered marker (relay/maildir) keeps a retried delivery to
// a hosted mailbox from being written twice.
func (r *Relay) Rescan(ctx context.Context) error {
	msgs, err := r.store.List(ctx)
	if err != nil {
		return fmt.Errorf("relay: rescan: %w", err)
	}
	added := 0
	for _, m := range msgs {
		r.mu.Lock()
		_, known := r.pending[m.ID]
		r.mu.Unlock()
		if known || done(m) {
			continue
		}
		r.schedule(m)
		added++
	}
	if added > 0 {
		r.Kick()
	}
	return nil
}
