package expiry

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the expiry job's own figures; the directory has no
// metrics of its own.
type metrics struct {
	due          prometheus.Gauge
	suspended    prometheus.Counter
	lastRun      prometheus.Gauge
	failures     prometheus.Counter
	certDaysLeft *prometheus.GaugeVec
	certWarnings prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		due: prometheus.NewGauge(prometheus.GaugeOpts{Name: "nhsrelay_directory_expiry_due",
			Help: "Verifications and certificates due within warn_before, at the last expiry check."}),
		suspended: prometheus.NewCounter(prometheus.CounterOpts{Name: "nhsrelay_directory_expiry_suspended_total",
			Help: "Endpoints suspended by the expiry check."}),
		lastRun: prometheus.NewGauge(prometheus.GaugeOpts{Name: "nhsrelay_directory_expiry_last_run_timestamp_seconds",
			Help: "When the expiry check last completed."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "nhsrelay_directory_expiry_failures_total",
			Help: "Expiry checks that failed."}),
		certDaysLeft: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nhsrelay_certificate_days_left",
			Help: "Days until each certificate the server uses expires (negative once expired), at the last expiry check."},
			[]string{"role", "subject"}),
		certWarnings: prometheus.NewGauge(prometheus.GaugeOpts{Name: "nhsrelay_certificate_expiry_warnings",
			Help: "Certificates the server uses that expire within warn_before or are unusable, at the last expiry check."}),
	}
	for _, c := range []prometheus.Collector{m.due, m.suspended, m.lastRun, m.failures, m.certDaysLeft, m.certWarnings} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("expiry: metrics: %w", err)
		}
	}
	return m, nil
}
