package relay

import "context"

// Attempt runs one delivery attempt of message id on ctx, as Run's
// dispatcher does with a context bounded by AttemptTimeout, for tests that
// must decide themselves when the attempt's context ends. The relay must
// not be running (Run), or two attempts could overlap.
func Attempt(r *Relay, ctx context.Context, id string) { r.attempt(ctx, id) }
