package queue_test

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"nhsrelay/relay/queue"
)

// BenchmarkBoltAdd measures durable Adds from parallel writers, the shape
// of SMTP load: group commit shows as msg/s above 1/commit latency.
func BenchmarkBoltAdd(b *testing.B) {
	s, err := queue.OpenBolt(filepath.Join(b.TempDir(), "queue.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var next atomic.Int64
	now := time.Now()
	b.SetParallelism(10)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("Q%012d", next.Add(1))
			m := queue.Message{ID: id, From: "gp.a81001@nhs.example", Received: now, Size: 4096,
				Recipients: []queue.Recipient{{Address: "cardio.rxx@nhs.example", State: queue.Queued, NextAttempt: now}}}
			if err := s.Add(b.Context(), m); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}
