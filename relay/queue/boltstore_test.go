package queue_test

import (
	"errors"
	"path/filepath"
	"testing"

	"nhsrelay/relay/queue"
	"nhsrelay/relay/queue/queuetest"
)

func openBolt(t *testing.T, path string) *queue.BoltStore {
	t.Helper()
	s, err := queue.OpenBolt(path)
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestBoltContract(t *testing.T) {
	t.Parallel()
	queuetest.Run(t,
		func(t *testing.T) queue.Store { return openBolt(t, filepath.Join(t.TempDir(), "queue.db")) },
		func(t *testing.T, s queue.Store) queue.Store {
			path := s.(*queue.BoltStore).Path()
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return openBolt(t, path)
		})
}

// A second opener (another nhsrelay on the same data) must fail, clearly
// and in bounded time, not hang or share the file.
func TestBoltLocked(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "queue.db")
	openBolt(t, path)
	_, err := queue.OpenBolt(path)
	if !errors.Is(err, queue.ErrLocked) {
		t.Fatalf("second OpenBolt error = %v, want ErrLocked", err)
	}
}
