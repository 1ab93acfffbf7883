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
	dsnLost   prometheus.Counter     // DSNs that cannot reach the sender
	lost      prometheus.Counter     // messages whose body could not be read (lost.go)
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
		dsnLost: prometheus.NewCounter(prometheus.CounterOpts{Name: "nhsrelay_relay_dsn_undeliverable_total",
			Help: "Delivery status notifications that could not reach the sender (logged and audited as dsn.undeliverable)."}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{Name: "nhsrelay_relay_lost_total",
			Help: "Accepted messages whose spooled body was found damaged or missing; each was failed with a DSN to its sender and audited as lost."}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "nhsrelay_relay_delivery_latency_seconds",
			Help:    "Time from acceptance to delivery, per recipient.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 4 * 3600, 24 * 3600}}),
	}
	if reg == nil {
		return m, nil
	}
	size := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "nhsrelay_queue_messages",
		Help: "Messages in the queue (queued or held)."}, func() float64 {
		n, _, _ := r.queueStats()
		return float64(n)
	})
	heldGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "nhsrelay_queue_held_recipients",
		Help: "Recipients held in the queue (no safe way to send yet; looked at again at each retry)."}, func() float64 {
		_, held, _ := r.queueStats()
		return float64(held)
	})
	hops := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "nhsrelay_relay_next_hops",
		Help: "Next hops with connection state (a delivery in progress or pooled connections)."}, func() float64 {
		r.mu.Lock()
		defer r.mu.Unlock()
		return float64(len(r.hops))
	})
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "nhsrelay_queue_oldest_age_seconds",
		Help: "Age of the oldest message in the queue; 0 when empty."}, func() float64 {
		_, _, oldest := r.queueStats()
		return oldest.Seconds()
	})
	for _, c := range []prometheus.Collector{m.accepted, m.delivered, m.deferred, m.bounced, m.held, m.dsns, m.dsnLost, m.lost, m.latency,
		size, heldGauge, age, hops} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("relay: register metrics: %w", err)
		}
	}
	return m, nil
}
