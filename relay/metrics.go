package relay

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the relay's Prometheus series. With no registerer they are
// still counted, just not exported.
type metrics struct {
	accepted  prometheus.Counter
	delivered *prometheus.CounterVec // by kind: maildir, smtp
	deferred  prometheus.Counter
	bounced   prometheus.Counter
	held      prometheus.Counter
	dsns      *prometheus.CounterVec // by action: failed, delayed
	latency   prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, r *Relay) (*metrics, error) {
	m := &metrics{
		accepted: prometheus.NewCounter(prometheus.CounterOpts{Name: "nhsrelay_relay_accepted_total",
			Help: "Messages queued durably (all intakes, DSNs included)."}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nhsrelay_relay_delivered_total",
			Help: "Recipients delivered, by next-hop kind."}, []string{"kind"}),
		deferred: prometheus.NewCounter(prometheus.CounterOpts{Name: "nhsrelay_relay_deferred_total",
			Help: "Recipient delivery attempts that failed temporarily and will be retried."}),
		bounced: prometheus.NewCounter(prometheus.CounterOpts{Name: "nhsrelay_relay_bounced_total",
			Help: "Recipients given up on with a failure DSN."}),
		held: prometheus.NewCounter(prometheus.CounterOpts{Name: "nhsrelay_relay_held_total",
			Help: "Recipients held back (no way to send them safely)."}),
		dsns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nhsrelay_relay_dsn_total",
			Help: "Delivery status notifications queued, by action."}, []string{"action"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "nhsrelay_relay_delivery_latency_seconds",
			Help:    "Time from acceptance to delivery, per recipient.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 4 * 3600, 24 * 3600}}),
	}
	if reg == nil {
		return m, nil
	}
	size := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "nhsrelay_queue_messages",
		Help: "Messages in the queue (queued or held)."}, func() float64 {
		n, _ := r.queueStats()
		return float64(n)
	})
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "nhsrelay_queue_oldest_age_seconds",
		Help: "Age of the oldest message in the queue; 0 when empty."}, func() float64 {
		_, oldest := r.queueStats()
		return oldest.Seconds()
	})
	for _, c := range []prometheus.Collector{m.accepted, m.delivered, m.deferred, m.bounced, m.held, m.dsns, m.latency, size, age} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("relay: register metrics: %w", err)
		}
	}
	return m, nil
}
