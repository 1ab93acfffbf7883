package expiry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nhsrelay/audit"
	"nhsrelay/directory"
)

// Directory is what the job asks the directory; *directory.Directory
// satisfies it.
type Directory interface {
	CheckExpiry(ctx context.Context) (directory.ExpiryReport, error)
}

// Cert is one certificate the server uses, already inspected. Its fields
// are those of certs.CertStatus, in the same order, so the caller converts
// one into the other: expiry.Cert(status).
type Cert struct {
	File     string
	Subject  string
	Role     string // the role label of nhsrelay_certificate_days_left
	Issuer   string
	NotAfter time.Time
	DaysLeft int
	Warning  string // empty when fine; otherwise what to do
}

// Config is what New needs.
type Config struct {
	Directory Directory // required
	// Certs lists the server's own certificates at now (certs.InUse); a
	// file it cannot read is an error, logged. nil: none.
	Certs      func(now time.Time) ([]Cert, []error)
	Mailer     directory.Mailer // required when SummaryTo is set
	From       string           // the summary's sender (directory.challenge_from)
	SummaryTo  string           // "": no mail
	Interval   time.Duration    // required
	WarnBefore time.Duration
	Metrics    prometheus.Registerer // nil: a private registry
	Logger     *slog.Logger          // nil: discard
	Now        func() time.Time      // nil: time.Now
}

// Job is the expiry job.
type Job struct {
	cfg     Config
	metrics *metrics
}

// New checks cfg and registers the job's metrics.
func New(cfg Config) (*Job, error) {
	var errs []error
	if cfg.Directory == nil {
		errs = append(errs, errors.New("expiry: Directory: not set"))
	}
	if cfg.Interval <= 0 {
		errs = append(errs, fmt.Errorf("expiry: Interval: %s is not positive", cfg.Interval))
	}
	if cfg.SummaryTo != "" && cfg.Mailer == nil {
		errs = append(errs, errors.New("expiry: Mailer: not set, but SummaryTo is"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Certs == nil {
		cfg.Certs = func(time.Time) ([]Cert, []error) { return nil, nil }
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	return &Job{cfg: cfg, metrics: m}, nil
}

// Run runs the job at once and then every Interval until ctx ends.
func (j *Job) Run(ctx context.Context) {
	t := time.NewTicker(j.cfg.Interval)
	defer t.Stop()
	for {
		j.Once(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// summary is what one run found.
type summary struct {
	dir       directory.ExpiryReport
	dirFailed bool
	certLines []string // one per certificate that needs attention
}

// Once runs the job one time.
func (j *Job) Once(ctx context.Context) {
	ctx = audit.WithActor(ctx, "expiry-check")
	log := j.cfg.Logger
	var sum summary
	rep, err := j.cfg.Directory.CheckExpiry(ctx)
	switch {
	case err != nil && ctx.Err() != nil:
		return
	case err != nil:
		sum.dirFailed = true
		j.metrics.failures.Inc()
		log.Error("expiry check failed", "err", err)
	default:
		sum.dir = rep
		j.metrics.due.Set(float64(len(rep.Warnings)))
		j.metrics.suspended.Add(float64(len(rep.Suspended)))
		if len(rep.Lines) > 0 {
			log.Warn("expiry summary", "checked", rep.Checked, "warnings", len(rep.Warnings),
				"suspended", len(rep.Suspended), "lines", rep.Lines)
		}
	}
	now := j.cfg.Now()
	sum.certLines = j.checkCerts(now)
	if !sum.dirFailed {
		j.metrics.lastRun.Set(float64(now.Unix()))
	}
	if j.cfg.SummaryTo == "" || len(sum.dir.Lines) == 0 && len(sum.certLines) == 0 && !sum.dirFailed {
		return
	}
	msg, err := summaryMail(j.cfg.From, j.cfg.SummaryTo, sum, now)
	if err == nil {
		err = j.cfg.Mailer.Send(ctx, j.cfg.From, []string{j.cfg.SummaryTo}, bytes.NewReader(msg))
	}
	if err != nil {
		log.Error("expiry summary mail not queued", "rcpt", j.cfg.SummaryTo, "err", err)
	}
}

// checkCerts sets the days-left gauges for every certificate in use, logs
// a warning for each that expires within WarnBefore or is unusable
// (expired, not yet valid, weak key), and returns those as summary lines.
func (j *Job) checkCerts(now time.Time) []string {
	list, errs := j.cfg.Certs(now)
	for _, err := range errs {
		j.cfg.Logger.Error("certificate expiry check: cannot read a certificate", "err", err)
	}
	j.metrics.certDaysLeft.Reset() // replaced certificates leave no stale series
	var lines []string
	for _, c := range list {
		left := c.NotAfter.Sub(now)
		j.metrics.certDaysLeft.WithLabelValues(c.Role, c.Subject).Set(left.Hours() / 24)
		warning := c.Warning
		if warning == "" && left < j.cfg.WarnBefore {
			warning = fmt.Sprintf("expires in %d days (%s): renew it", c.DaysLeft, c.NotAfter.UTC().Format(time.DateOnly))
		}
		if warning == "" {
			continue
		}
		j.cfg.Logger.Warn("certificate needs attention", "role", c.Role, "subject", c.Subject, "file", c.File,
			"days_left", c.DaysLeft, "not_after", c.NotAfter.UTC().Format(time.RFC3339), "warning", warning)
		lines = append(lines, fmt.Sprintf("%s certificate %s (%s): %s", c.Role, c.Subject, c.File, warning))
	}
	j.metrics.certWarnings.Set(float64(len(lines)))
	return lines
}
