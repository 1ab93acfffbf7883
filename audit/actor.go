package audit

import "context"

type actorKey struct{}

// WithActor returns ctx carrying the name of who is acting (an account, an
// admin token's name), for the code below to put in its audit events.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorFrom returns the actor WithActor stored, or "system".
func ActorFrom(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok && a != "" {
		return a
	}
	return "system"
}
