package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nhsrelay/audit"
	"nhsrelay/directory"
	"nhsrelay/relay"
)

// Directory is what smtpd asks the directory; *directory.Directory satisfies it.
type Directory interface {
	// CheckRecipient returns the endpoint for addr if it may receive
	// clinical mail now; errors wrap directory.ErrNotFound or are a
	// *directory.NotVerifiedError.
	CheckRecipient(ctx context.Context, addr string) (directory.Endpoint, error)
	// Authenticate returns the active account for user and pass, or an
	// error wrapping directory.ErrAuthFailed.
	Authenticate(ctx context.Context, user, pass string) (directory.Account, error)
	// ActiveAccount returns user's account as it is now; errors wrap
	// directory.ErrNotFound or are a *directory.AccountDisabledError.
	ActiveAccount(ctx context.Context, user string) (directory.Account, error)
}

// Queue takes accepted messages; *relay.Relay satisfies it. Submit returns
// only once the message is durable, and commits nothing if reading body
// fails (the error it returns wraps the reader's).
type Queue interface {
	Submit(ctx context.Context, env relay.Envelope, body io.Reader) (id string, err error)
}

// Mode is the kind of listener Serve runs.
type Mode int

const (
	// Submission is port 587: STARTTLS, then AUTH, then mail (RFC 6409).
	Submission Mode = iota + 1
	// SubmissionTLS is port 465: implicit TLS, then AUTH (RFC 8314 §3.3).
	SubmissionTLS
	// MX is port 25: STARTTLS offered, no AUTH, mail only for endpoints
	// hosted on this relay.
	MX
)

func (m Mode) String() string {
	switch m {
	case Submission:
		return "submission"
	case SubmissionTLS:
		return "submissions"
	case MX:
		return "mx"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

func (m Mode) submission() bool { return m == Submission || m == SubmissionTLS }

// Defaults. Postfix's are the reference; where we differ, the reason is given.
const (
	// DefaultMaxMessageBytes is 50 MB (Postfix message_size_limit is 10 MB;
	// clinical letters with scans are larger).
	DefaultMaxMessageBytes = 50 << 20
	// DefaultMaxRecipients is Postfix's smtpd_recipient_limit.
	DefaultMaxRecipients = 1000
	// DefaultMaxHeaderBytes is Postfix's header_size_limit (102400).
	DefaultMaxHeaderBytes = 100 << 10
	// DefaultMaxConnsPerIP is Postfix's smtpd_client_connection_count_limit.
	DefaultMaxConnsPerIP = 50
	// DefaultMaxConns bounds all sessions of one Server (Postfix bounds
	// smtpd processes with default_process_limit = 100; goroutines are
	// cheaper, memory per session is what we bound).
	DefaultMaxConns = 1000
	// DefaultIdleTimeout is Postfix's smtpd_timeout: the longest wait for
	// a command line, and RFC 5321 §4.5.3.2.7's server timeout.
	DefaultIdleTimeout = 5 * time.Minute
	// DefaultDataTimeout is the longest wait for any read during DATA
	// (Postfix uses smtpd_timeout here too), and the grace period before
	// MinDataRate applies.
	DefaultDataTimeout = 5 * time.Minute
	// DefaultMinDataRate is Postfix's smtpd_min_data_rate (bytes/s).
	DefaultMinDataRate = 500
	// DefaultMaxErrors is Postfix's smtpd_hard_error_limit: refused
	// commands before 421 and disconnect.
	DefaultMaxErrors = 20
	// DefaultMaxJunkCommands is Postfix's smtpd_junk_command_limit:
	// commands that do not move a transaction forward (NOOP, RSET, VRFY,
	// repeated EHLO...) before 421 and disconnect.
	DefaultMaxJunkCommands = 100
	// DefaultGreetWait is how long the plaintext MX listener waits, after the
	// first line of a multi-line greeting, for a client that talks too
	// early (Postfix postscreen_greet_wait is 6s; that is for port 25 only
	// and cached per client; we pay it on every MX connection).
	DefaultGreetWait = 500 * time.Millisecond
	// DefaultMaxAuthFailures is how many failed AUTHs one client IP may
	// make per AuthFailureWindow before AUTH answers 454 4.7.0.
	DefaultMaxAuthFailures = 10
	// DefaultAuthFailureWindow is the window for MaxAuthFailures.
	DefaultAuthFailureWindow = 15 * time.Minute
)

// Config is everything a Server needs. Zero limits take the defaults above;
// negative values are refused (there is no "unlimited").
type Config struct {
	Hostname  string      // our name in the greeting and Received headers
	TLS       *tls.Config // required; cmd passes GetCertificate from a reloader
	Directory Directory
	Queue     Queue
	Logger    *slog.Logger          // nil: discard
	Metrics   prometheus.Registerer // nil: a private registry
	// Audit records what smtpd refuses and accepts; nil: no audit events.
	// If it also has Err() error (*audit.Log does) and Err is not nil,
	// MAIL and DATA are refused with 451 4.3.0 (fail closed; audit.go).
	Audit audit.Recorder
	Now   func() time.Time // clock for headers and audit; nil: time.Now

	// TrustedNetworks may submit without AUTH (content filters,
	// benchmarks). Empty by default. Recipients are still checked against
	// the directory, and on MX only hosted endpoints are accepted.
	TrustedNetworks []netip.Prefix

	// Handlers take mail for special recipients (the directory's challenge
	// address, T.37 fax mail) instead of the queue; see RecipientHandler.
	// The first whose Accepts says yes takes the recipient. None by default.
	Handlers []RecipientHandler

	MaxMessageBytes   int64         // 552 5.3.4 past it; advertised in SIZE
	MaxRecipients     int           // 452 4.5.3 past it
	MaxHeaderBytes    int           // 552 5.3.4 past it
	MaxConnsPerIP     int           // 421 4.7.0 past it
	MaxConns          int           // 421 4.7.0 past it
	IdleTimeout       time.Duration // 421 4.4.2 when no command comes
	DataTimeout       time.Duration // 421 4.4.2 when DATA stalls
	MinDataRate       int           // bytes/s after DataTimeout of grace; 421 4.4.2
	MaxErrors         int           // refused commands before 421 4.7.0
	MaxJunkCommands   int           // commands in a row that move nothing forward, before 421 4.7.0
	GreetWait         time.Duration // pregreet test on the plaintext MX listener; negative disables
	MaxAuthFailures   int           // per client IP per AuthFailureWindow
	AuthFailureWindow time.Duration
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("smtpd: server closed")

// ValidateSettings reports every problem with c's settings alone (host
// name, limits, networks; not TLS, Directory, Queue and the other parts a
// running server passes in), each naming its field. New runs it;
// `nhsrelay check-config` runs it on the config file's values, so the two
// can never disagree.
func (c Config) ValidateSettings() error {
	_, errs := c.settings()
	return errors.Join(errs...)
}

// withDefaults checks c and fills the zero values; every problem names its field.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	bad := func(field, why string) { errs = append(errs, fmt.Errorf("smtpd: %s: %s", field, why)) }
	if c.TLS == nil {
		bad("TLS", "required: AUTH and clinical mail need TLS")
	} else if len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil && c.TLS.GetConfigForClient == nil {
		bad("TLS", "no certificate")
	}
	if c.Directory == nil {
		bad("Directory", "required")
	}
	if c.Queue == nil {
		bad("Queue", "required")
	}
	c, serrs := c.settings()
	errs = append(errs, serrs...)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = prometheus.NewRegistry()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.TLS != nil {
		c.TLS = c.TLS.Clone()
		if c.TLS.MinVersion < tls.VersionTLS12 { // DESIGN: TLS 1.2+ only
			c.TLS.MinVersion = tls.VersionTLS12
		}
	}
	return c, errors.Join(errs...)
}

// settings checks the settings and fills their zero values.
func (c Config) settings() (Config, []error) {
	var errs []error
	bad := func(field, why string) { errs = append(errs, fmt.Errorf("smtpd: %s: %s", field, why)) }
	if c.Hostname == "" {
		bad("Hostname", "required")
	} else if !ValidHostname(c.Hostname) {
		bad("Hostname", "not a domain name")
	}
	for _, p := range c.TrustedNetworks {
		if !p.IsValid() {
			bad("TrustedNetworks", "invalid prefix")
		}
	}
	for i, h := range c.Handlers {
		if h == nil {
			bad(fmt.Sprintf("Handlers[%d]", i), "nil")
		}
	}
	defInt := func(field string, v *int, d int) {
		if *v < 0 {
			bad(field, "negative")
		} else if *v == 0 {
			*v = d
		}
	}
	defDur := func(field string, v *time.Duration, d time.Duration) {
		if *v < 0 {
			bad(field, "negative")
		} else if *v == 0 {
			*v = d
		}
	}
	if c.MaxMessageBytes < 0 {
		bad("MaxMessageBytes", "negative")
	} else if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	defInt("MaxRecipients", &c.MaxRecipients, DefaultMaxRecipients)
	defInt("MaxHeaderBytes", &c.MaxHeaderBytes, DefaultMaxHeaderBytes)
	defInt("MaxConnsPerIP", &c.MaxConnsPerIP, DefaultMaxConnsPerIP)
	defInt("MaxConns", &c.MaxConns, DefaultMaxConns)
	defDur("IdleTimeout", &c.IdleTimeout, DefaultIdleTimeout)
	defDur("DataTimeout", &c.DataTimeout, DefaultDataTimeout)
	defInt("MinDataRate", &c.MinDataRate, DefaultMinDataRate)
	defInt("MaxErrors", &c.MaxErrors, DefaultMaxErrors)
	defInt("MaxJunkCommands", &c.MaxJunkCommands, DefaultMaxJunkCommands)
	defInt("MaxAuthFailures", &c.MaxAuthFailures, DefaultMaxAuthFailures)
	defDur("AuthFailureWindow", &c.AuthFailureWindow, DefaultAuthFailureWindow)
	if c.GreetWait == 0 {
		c.GreetWait = DefaultGreetWait
	}
	return c, errs
}

// ValidHostname accepts letters, digits, '-' and '.' labels (RFC 1035 §2.3.1;
// no label starts or ends with '-', RFC 1123 §2.1),
// which is all that may go into our greeting and Received headers. A
// trailing dot (an empty last label) is refused: "relay.nhs.uk." in EHLO
// is not what RFC 5321 §4.1.2 Domain allows.
func ValidHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range splitDots(h) {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' { // RFC 1123 §2.1
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func splitDots(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
