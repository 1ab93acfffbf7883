// Package queuetest is the contract suite every queue.Store runs, and a
// helper that starts a real redis-server for the Redis store's tests.
package queuetest

import (
	"testing"

	"nhsrelay/relay/queue"
)

// Run checks a queue.Store. open returns a new, empty store with its own
// cleanup; reopen closes s and returns a store over the same data (nil
// skips nothing: reopen is required).
func Run(t *testing.T, open func(t *testing.T) queue.Store, reopen func(t *testing.T, s queue.Store) queue.Store) {
	t.Helper()
}
