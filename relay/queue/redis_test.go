package queue_test

import (
	"errors"
	"testing"

	"nhsrelay/relay/queue"
	"nhsrelay/relay/queue/queuetest"
)

func TestRedisContract(t *testing.T) {
	t.Parallel()
	rdb := queuetest.StartRedis(t)
	queuetest.Run(t,
		func(t *testing.T) queue.Store {
			return queue.NewRedis(rdb, "test:"+t.Name()+":") // fresh prefix: an empty store
		},
		func(t *testing.T, s queue.Store) queue.Store {
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return queue.NewRedis(rdb, "test:"+t.Name()+":")
		})
}

func TestRedisCheckDurable(t *testing.T) {
	t.Parallel()
	rdb := queuetest.StartRedis(t)
	s := queue.NewRedis(rdb, "test:")
	if err := s.CheckDurable(t.Context()); err != nil {
		t.Fatalf("CheckDurable on an appendfsync-always server: %v", err)
	}
	if err := rdb.ConfigSet(t.Context(), "appendfsync", "everysec").Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckDurable(t.Context()); !errors.Is(err, queue.ErrNotDurable) {
		t.Fatalf("CheckDurable with appendfsync everysec = %v, want ErrNotDurable", err)
	}
}
