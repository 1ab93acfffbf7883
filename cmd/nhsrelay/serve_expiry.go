package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nhsrelay/audit"
	"nhsrelay/certs"
	"nhsrelay/directory"
	"nhsrelay/relay/smimepolicy"
)

// Roles of the certificates the server itself uses, as the expiry check
// names them (the role label of nhsrelay_certificate_days_left).
const (
	roleTLSServer = "tls-server"         // tls.cert_file, as loaded (SIGHUP reloads it)
	roleSMIMEOrg  = "smime-organisation" // smime.keys_dir/<ODS>.crt: signs outbound mail
	roleSMIMEHost = "smime-endpoint"     // smime.keys_dir/<address>.crt or <address>/*.crt, the current pair: published, decrypts
	// roleSMIMEOlder is an endpoint's older pair after a key rollover: no
	// longer published, still decrypts mail sent to it until removed.
	roleSMIMEOlder = "smime-endpoint-older"
	chainSuffix    = "-chain" // an intermediate sent with one of the above
)

// certInUse is one certificate the server presents or signs or decrypts
// with.
type certInUse struct {
	role string
	file string
	cert *x509.Certificate
}

// certsInUse lists the server's own certificates: the TLS certificate in
// use (from tlsCert, so a reloaded one counts) and every certificate in
// keysDir's *.crt files. A file that cannot be read or parsed is reported
// and skipped.
func certsInUse(tlsCert func() *tls.Certificate, certFile, keysDir string) ([]certInUse, []error) {
	var out []certInUse
	var errs []error
	if c := tlsCert(); c != nil {
		for i, der := range c.Certificate {
			x, err := x509.ParseCertificate(der)
			if err != nil {
				errs = append(errs, fmt.Errorf("tls.cert_file %s: certificate %d: %w", certFile, i, err))
				continue
			}
			out = append(out, certInUse{role: chainRole(roleTLSServer, i), file: certFile, cert: x})
		}
	}
	entries, err := os.ReadDir(keysDir)
	if err != nil {
		return out, append(errs, fmt.Errorf("smime.keys_dir: %w", err))
	}
	// Hosted endpoints' pairs, several per address after a rollover: the
	// current one as the policy picks it now (smimepolicy.ListEndpointKeys).
	for _, k := range smimepolicy.ListEndpointKeys(keysDir, time.Now()) {
		role := roleSMIMEOlder
		if k.Current {
			role = roleSMIMEHost
		}
		out = append(out, certInUse{role: role, file: k.File, cert: k.Cert})
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".crt")
		if !ok || !e.Type().IsRegular() || strings.Contains(name, "@") {
			continue
		}
		role := roleSMIMEHost
		if certs.IsODSCode(name) {
			role = roleSMIMEOrg
		}
		file := filepath.Join(keysDir, e.Name())
		data, err := os.ReadFile(file)
		if err != nil {
			errs = append(errs, fmt.Errorf("smime.keys_dir: %w", err))
			continue
		}
		chain, err := certs.ParseCertificates(data)
		if err != nil || len(chain) == 0 {
			errs = append(errs, fmt.Errorf("smime.keys_dir: %s: no certificate (%v)", file, err))
			continue
		}
		for i, x := range chain {
			out = append(out, certInUse{role: chainRole(role, i), file: file, cert: x})
		}
	}
	return out, errs
}

func chainRole(role string, i int) string {
	if i == 0 {
		return role
	}
	return role + chainSuffix
}

// expiryMetrics are the expiry check's own figures; the directory has no
// metrics of its own.
type expiryMetrics struct {
	due          prometheus.Gauge
	suspended    prometheus.Counter
	lastRun      prometheus.Gauge
	failures     prometheus.Counter
	certDaysLeft *prometheus.GaugeVec
	certWarnings prometheus.Gauge
}

func newExpiryMetrics(reg prometheus.Registerer) *expiryMetrics {
	m := &expiryMetrics{
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
	reg.MustRegister(m.due, m.suspended, m.lastRun, m.failures, m.certDaysLeft, m.certWarnings)
	return m
}

// expiryDirectory is what the expiry check asks the directory;
// *directory.Directory satisfies it.
type expiryDirectory interface {
	CheckExpiry(ctx context.Context) (directory.ExpiryReport, error)
}

// expiryCheck is serve's expiry check, at start and every interval: the
// directory's verifications and endpoint certificates (the directory logs,
// audits and suspends), and the certificates the server itself uses (TLS
// server, S/MIME organisation and hosted endpoint pairs), each warned
// about within warnBefore. A run with anything to report logs a summary
// and mails it to summaryTo, if set, through the relay.
type expiryCheck struct {
	dir        expiryDirectory
	certs      func() ([]certInUse, []error)
	mailer     directory.Mailer
	from       string
	summaryTo  string // "": no mail
	interval   time.Duration
	warnBefore time.Duration
	metrics    *expiryMetrics
	logger     *slog.Logger
	now        func() time.Time
}

func (e *expiryCheck) loop(ctx context.Context) {
	t := time.NewTicker(e.interval)
	defer t.Stop()
	for {
		e.once(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// expirySummary is what one run found.
type expirySummary struct {
	dir       directory.ExpiryReport
	dirFailed bool
	certLines []string // one per certificate that needs attention
}

func (e *expiryCheck) once(ctx context.Context) {
	ctx = audit.WithActor(ctx, "expiry-check")
	var sum expirySummary
	rep, err := e.dir.CheckExpiry(ctx)
	switch {
	case err != nil && ctx.Err() != nil:
		return
	case err != nil:
		sum.dirFailed = true
		e.metrics.failures.Inc()
		e.logger.Error("expiry check failed", "err", err)
	default:
		sum.dir = rep
		e.metrics.due.Set(float64(len(rep.Warnings)))
		e.metrics.suspended.Add(float64(len(rep.Suspended)))
		if len(rep.Lines) > 0 {
			e.logger.Warn("expiry summary", "checked", rep.Checked, "warnings", len(rep.Warnings),
				"suspended", len(rep.Suspended), "lines", rep.Lines)
		}
	}
	sum.certLines = e.checkCerts()
	if !sum.dirFailed {
		e.metrics.lastRun.Set(float64(e.now().Unix()))
	}
	if e.summaryTo == "" || len(sum.dir.Lines) == 0 && len(sum.certLines) == 0 && !sum.dirFailed {
		return
	}
	msg := expirySummaryMail(e.from, e.summaryTo, sum, e.now())
	if err := e.mailer.Send(ctx, e.from, []string{e.summaryTo}, strings.NewReader(msg)); err != nil {
		e.logger.Error("expiry summary mail not queued", "rcpt", e.summaryTo, "err", err)
	}
}

// checkCerts sets the days-left gauges for every certificate in use, logs
// a warning for each that expires within warnBefore or is unusable (expired,
// not yet valid, weak key), and returns those as summary lines.
func (e *expiryCheck) checkCerts() []string {
	now := e.now()
	list, errs := e.certs()
	for _, err := range errs {
		e.logger.Error("certificate expiry check: cannot read a certificate", "err", err)
	}
	e.metrics.certDaysLeft.Reset() // replaced certificates leave no stale series
	var lines []string
	for _, c := range list {
		st := certs.Inspect(c.cert, now)
		left := c.cert.NotAfter.Sub(now)
		e.metrics.certDaysLeft.WithLabelValues(c.role, st.Subject).Set(left.Hours() / 24)
		warning := st.Warning
		if warning == "" && left < e.warnBefore {
			warning = fmt.Sprintf("expires in %d days (%s): renew it", st.DaysLeft, c.cert.NotAfter.UTC().Format(time.DateOnly))
		}
		if warning == "" {
			continue
		}
		e.logger.Warn("certificate needs attention", "role", c.role, "subject", st.Subject, "file", c.file,
			"days_left", st.DaysLeft, "not_after", c.cert.NotAfter.UTC().Format(time.RFC3339), "warning", warning)
		lines = append(lines, fmt.Sprintf("%s certificate %s (%s): %s", c.role, st.Subject, c.file, warning))
	}
	e.metrics.certWarnings.Set(float64(len(lines)))
	return lines
}

// expirySummaryMail is the administrators' summary as an RFC 5322 message
// with CRLF line endings. Lines hold addresses, ODS codes, certificate
// subjects, file names and dates, never clinical content; control
// characters are dropped so no line can end the header or the message
// early.
func expirySummaryMail(from, to string, s expirySummary, now time.Time) string {
	var b strings.Builder
	b.WriteString("From: nhsrelay <" + from + ">\r\n")
	b.WriteString("To: <" + to + ">\r\n")
	b.WriteString("Subject: nhsrelay expiry summary " + now.UTC().Format(time.DateOnly) + "\r\n")
	b.WriteString("Date: " + now.Format(time.RFC1123Z) + "\r\n")
	b.WriteString("Message-ID: <expiry." + strconv.FormatInt(now.UnixNano(), 36) + "." + from + ">\r\n")
	b.WriteString("Auto-Submitted: auto-generated\r\n") // RFC 3834 §5
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	line := func(l string) {
		b.WriteString(strings.Map(func(r rune) rune {
			if r < ' ' || r == 0x7f {
				return ' '
			}
			return r
		}, l) + "\r\n")
	}
	if s.dirFailed {
		b.WriteString("The directory's expiry check failed; see the server log (expiry check failed).\r\n")
	} else {
		fmt.Fprintf(&b, "%d verified endpoints checked: %d due soon, %d suspended.\r\n", s.dir.Checked, len(s.dir.Warnings), len(s.dir.Suspended))
	}
	for _, l := range s.dir.Lines {
		line(l)
	}
	fmt.Fprintf(&b, "\r\nCertificates this server uses: %d need attention.\r\n", len(s.certLines))
	for _, l := range s.certLines {
		line(l)
	}
	return b.String()
}
