package relay_test

import (
	"log/slog"
	"strings"
	"sync"
	"testing"

	"nhsrelay/directory"
	"nhsrelay/relay"
	"nhsrelay/relay/relaytest"
)

// BenchmarkSubmitAndDeliver measures accept-to-delivered throughput through
// the real spool and bbolt store to a plain loopback sink, with 20
// concurrent submitters (as smtp-source -s 20).
func BenchmarkSubmitAndDeliver(b *testing.B) {
	sink := relaytest.Start(b, relaytest.Options{})
	d := newDir()
	d.add("bench@sink.example", directory.NextHop{Kind: directory.HopHost, Host: sink.Addr, TLS: directory.TLSPlainLoopback})
	e := start(b, d, func(cfg *relay.Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(b.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
		cfg.Metrics = nil
	})
	body := message("bench", "b") + strings.Repeat(strings.Repeat("x", 78)+"\r\n", 51) // about 4 KiB
	b.ResetTimer()
	var wg sync.WaitGroup
	work := make(chan struct{})
	for range 20 {
		wg.Go(func() {
			for range work {
				e.submit(b, sender, []string{"bench@sink.example"}, body)
			}
		})
	}
	for range b.N {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	sink.WaitMessages(b, b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}
