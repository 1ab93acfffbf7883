package faxbridge

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	received    *prometheus.CounterVec
	pages       prometheus.Counter
	deadLetters prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nhsrelay_fax_received_total",
			Help: "Faxes received, by intake and outcome (delivered, dead-letter, duplicate, failed, rerouted, error).",
		}, []string{"source", "outcome"}),
		pages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nhsrelay_fax_pages_total", Help: "Fax pages delivered.",
		}),
		deadLetters: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nhsrelay_fax_dead_letters",
			Help: "Faxes waiting in the dead-letter store for an administrator to re-route (alert when above 0).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.received, m.pages, m.deadLetters} {
		if err := reg.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			return nil, err
		}
	}
	return m, nil
}
