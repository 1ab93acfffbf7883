package queue_test

import (
	"errors"
	"fmt"
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

// With appendfsync always, what a method acknowledged survives the
// server's SIGKILL.
func TestRedisSurvivesServerKill(t *testing.T) {
	t.Parallel()
	srv := queuetest.StartRedisServer(t)
	s := queue.NewRedis(srv.Client, "q:")
	for i := range 50 {
		if err := s.Add(t.Context(), queue.Message{ID: fmt.Sprintf("Q%02d", i), From: "a@nhs.example"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Update(t.Context(), "Q07", func(m *queue.Message) error { m.Size = 7; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(t.Context(), "Q08"); err != nil {
		t.Fatal(err)
	}
	srv.Crash(t)
	l, err := s.List(t.Context())
	if err != nil || len(l) != 49 {
		t.Fatalf("after kill -9: List = %d messages, %v; want 49", len(l), err)
	}
	if m, err := s.Get(t.Context(), "Q07"); err != nil || m.Size != 7 {
		t.Fatalf("after kill -9: Q07 = %+v, %v; want the update kept", m, err)
	}
}
