package relay_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"nhsrelay/directory"
	"nhsrelay/relay"
	"nhsrelay/relay/queue"
	"nhsrelay/relay/queue/queuetest"
	"nhsrelay/relay/relaytest"
)

// clusterBenchMessages is the load of each configuration.
const clusterBenchMessages = 1500

// BenchmarkCluster runs the same load (20 concurrent submitters, 4 KiB
// messages, delivered to a loopback sink) through one embedded relay, one
// relay on Redis, and three relays sharing that Redis, in one run, and
// reports each one's msg/s, CPU-ms per message (this process plus
// redis-server), Redis round trips per message (INFO commandstats), and
// the two ratios: Redis node ÷ embedded and three nodes ÷ one.
func BenchmarkCluster(b *testing.B) {
	for range b.N {
		emb := runClusterBench(b, 0)
		one := runClusterBench(b, 1)
		three := runClusterBench(b, 3)
		for _, r := range []struct {
			name string
			res  clusterBenchResult
		}{{"embedded", emb}, {"redis-1node", one}, {"redis-3nodes", three}} {
			b.ReportMetric(r.res.rate, r.name+"-msg/s")
			b.ReportMetric(r.res.cpuMS, r.name+"-cpu-ms/msg")
			if r.res.rtt > 0 {
				b.ReportMetric(r.res.rtt, r.name+"-redis-calls/msg")
			}
		}
		b.ReportMetric(one.rate/emb.rate, "redis÷embedded")
		b.ReportMetric(three.rate/one.rate, "3nodes÷1node")
	}
}

type clusterBenchResult struct{ rate, cpuMS, rtt float64 }

func runClusterBench(b *testing.B, nodes int) clusterBenchResult {
	sink := relaytest.Start(b, relaytest.Options{})
	d := newDir()
	d.add("bench@sink.example", directory.NextHop{Kind: directory.HopHost, Host: sink.Addr, TLS: directory.TLSPlainLoopback})
	quiet := func(cfg *relay.Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(b.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
		cfg.Metrics = nil
	}
	var envs []*env
	var srv *queuetest.RedisServer
	if nodes == 0 {
		envs = append(envs, start(b, d, quiet))
	} else {
		srv = queuetest.StartRedisServer(b)
		key := spoolKey(b)
		for i := range nodes {
			envs = append(envs, start(b, d, func(c *relay.Config) {
				quiet(c)
				c.SpoolKey = key
				redisStores(b, srv, "n:")(c)
				st := c.Store.(*queue.RedisStore)
				st.SetNode("node" + strconv.Itoa(i))
				c.Leases = st
			}))
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if nodes > 1 {
		for _, e := range envs { // as serve does in cluster mode
			go func() {
				t := time.NewTicker(2 * time.Second)
				defer t.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-t.C:
						e.r.Rescan(ctx)
					}
				}
			}()
		}
	}
	body := message("bench", "b") + strings.Repeat(strings.Repeat("x", 78)+"\r\n", 51) // about 4 KiB
	calls0, rcpu0 := redisStats(b, srv)
	cpu0 := selfCPU()
	start := time.Now()
	var wg sync.WaitGroup
	work := make(chan int)
	for s := range 20 {
		e := envs[s%len(envs)] // sessions spread across the nodes
		wg.Go(func() {
			for range work {
				e.submit(b, sender, []string{"bench@sink.example"}, body)
			}
		})
	}
	for i := range clusterBenchMessages {
		work <- i
	}
	close(work)
	wg.Wait()
	sink.WaitMessages(b, clusterBenchMessages)
	elapsed := time.Since(start)
	calls1, rcpu1 := redisStats(b, srv)
	if srv != nil && testing.Verbose() {
		info, _ := srv.Client.Info(context.Background(), "commandstats").Result()
		b.Logf("redis commandstats:\n%s", info)
	}
	cpu := selfCPU() - cpu0 + (rcpu1 - rcpu0)
	res := clusterBenchResult{
		rate:  clusterBenchMessages / elapsed.Seconds(),
		cpuMS: cpu.Seconds() * 1000 / clusterBenchMessages,
		rtt:   float64(calls1-calls0) / clusterBenchMessages,
	}
	b.Logf("%d node(s)%s: %.0f msg/s, %.2f CPU-ms/msg (%.1f CPU-s per 1,000), %.1f redis calls/msg",
		max(nodes, 1), map[bool]string{true: " embedded", false: " on redis"}[nodes == 0],
		res.rate, res.cpuMS, res.cpuMS, res.rtt)
	return res
}

// redisStats returns the total commands redis-server has run (INFO
// commandstats, so scripts count once) and its CPU time so far.
func redisStats(b *testing.B, srv *queuetest.RedisServer) (calls int64, cpu time.Duration) {
	if srv == nil {
		return 0, 0
	}
	ctx := context.Background()
	info, err := srv.Client.Info(ctx, "commandstats", "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "cmdstat_"); ok && !strings.HasPrefix(rest, "info:") {
			_, stats, _ := strings.Cut(rest, ":")
			for _, kv := range strings.Split(stats, ",") {
				if v, ok := strings.CutPrefix(kv, "calls="); ok {
					n, _ := strconv.ParseInt(v, 10, 64)
					calls += n
				}
			}
		}
		for _, k := range []string{"used_cpu_user:", "used_cpu_sys:"} {
			if v, ok := strings.CutPrefix(line, k); ok {
				f, _ := strconv.ParseFloat(v, 64)
				cpu += time.Duration(f * float64(time.Second))
			}
		}
	}
	return calls, cpu
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
