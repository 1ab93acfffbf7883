package queue_test

import (
	"errors"
	"testing"
	"time"

	"nhsrelay/relay/queue"
	"nhsrelay/relay/queue/queuetest"
)

func TestRedisLease(t *testing.T) {
	t.Parallel()
	rdb := queuetest.StartRedis(t)
	a, b := queue.NewRedis(rdb, "q:"), queue.NewRedis(rdb, "q:")
	a.SetNode("node-a")
	b.SetNode("node-b")
	releaseA, err := a.Lease(t.Context(), "M1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Lease(t.Context(), "M1", time.Minute); !errors.Is(err, queue.ErrLeased) {
		t.Fatalf("second node's Lease(M1) = %v, want ErrLeased", err)
	}
	if l, err := b.Leases(t.Context()); err != nil || l["M1"] != "node-a" || len(l) != 1 {
		t.Fatalf("Leases = %v, %v; want M1 held by node-a", l, err)
	}
	releaseA()
	releaseB, err := b.Lease(t.Context(), "M1", time.Minute)
	if err != nil {
		t.Fatalf("Lease after release: %v", err)
	}
	releaseA() // a stale release must not drop b's lease
	if _, err := a.Lease(t.Context(), "M1", time.Minute); !errors.Is(err, queue.ErrLeased) {
		t.Fatalf("after a stale release, Lease(M1) = %v, want ErrLeased (b holds it)", err)
	}
	releaseB()

	// A node that dies holding a lease loses it when the lease expires.
	if _, err := a.Lease(t.Context(), "M2", 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := b.Lease(t.Context(), "M2", time.Minute)
		if err == nil {
			break
		}
		if !errors.Is(err, queue.ErrLeased) || time.Now().After(deadline) {
			t.Fatalf("Lease(M2) after the holder's lease expired: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
