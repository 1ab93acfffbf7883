package relay

import (
	"context"

	"nhsrelay/relay/spool"
)

// Attempt runs one delivery attempt of message id on ctx, as Run's
// dispatcher does with a context bounded by AttemptTimeout, for tests that
// must decide themselves when the attempt's context ends. The relay must
// not be running (Run), or two attempts could overlap.
func Attempt(r *Relay, ctx context.Context, id string) { r.attempt(ctx, id) }

// Spool is the relay's own spool: a second spool.Open on the folder while
// the relay runs would not see the relay's removals of small bodies, which
// live in shared segment files.
func Spool(r *Relay) spool.Bodies { return r.spool }
