package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"nhsrelay/admin"
	"nhsrelay/certs"
	"nhsrelay/directory"
	"nhsrelay/smtpd"
)

// validator collects problems, each prefixed with its key.
type validator struct {
	dir  string // the config file's folder: relative paths start here
	errs []error
	bad  map[string]bool // keys already reported, so checks across keys skip them
}

// ok reports whether none of keys has a problem reported yet.
func (v *validator) ok(keys ...string) bool {
	for _, k := range keys {
		if v.bad[k] {
			return false
		}
	}
	return true
}

func (v *validator) addf(key, format string, args ...any) {
	if v.bad == nil {
		v.bad = map[string]bool{}
	}
	v.bad[key] = true
	v.errs = append(v.errs, &keyError{Key: key, Problem: fmt.Sprintf(format, args...)})
}

func (v *validator) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(v.dir, p)
}

// duration parses a Go duration ("90s", "4h"); min is the smallest allowed.
func (v *validator) duration(key, s string, min time.Duration) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		v.addf(key, "%q is not a duration (write it like \"90s\", \"15m\" or \"4h\")", s)
		return 0
	}
	if d < min {
		v.addf(key, "%s is below the minimum %s", s, min)
	}
	return d
}

func (v *validator) positive(key string, n int64) {
	if n <= 0 {
		v.addf(key, "must be greater than 0, got %d", n)
	}
}

// file checks that a required file exists and is a regular file; if secret,
// that neither group nor others may read it.
func (v *validator) file(key, p string, secret bool) string {
	if p == "" {
		v.addf(key, "must be set")
		return ""
	}
	p = v.path(p)
	fi, err := os.Stat(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		v.addf(key, "no such file: %s", p)
	case err != nil:
		v.addf(key, "%v", err)
	case !fi.Mode().IsRegular():
		v.addf(key, "not a regular file: %s", p)
	case secret && fi.Mode().Perm()&0o077 != 0:
		v.addf(key, "%s has mode %04o; a secret must be readable by its owner only (chmod 600)", p, fi.Mode().Perm())
	}
	return p
}

// listen checks a "host:port" listen address; "" disables the listener.
func (v *validator) listen(key, addr string) {
	if addr == "" {
		return
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.addf(key, "%q is not host:port (write \":587\" or \"127.0.0.1:2587\")", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.addf(key, "port %q is not a number from 0 to 65535", port)
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		v.addf(key, "host %q must be an IP address or localhost, so the listener cannot move with DNS", host)
	}
}

func (fc *fileConfig) validate(path string) (*config, []error) {
	v := &validator{dir: filepath.Dir(path)}
	c := &config{Path: path}

	// [server]
	c.Hostname = fc.Server.Hostname
	if c.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			v.addf("server.hostname", "not set and the system hostname is unknown: %v", err)
		}
		c.Hostname = h
	}
	if c.Hostname != "" && !smtpd.ValidHostname(c.Hostname) {
		v.addf("server.hostname", "%q is not a host name (letters, digits, '-' and '.')", c.Hostname)
	}
	c.DataDir = v.path(fc.Server.DataDir)
	if c.DataDir == "" {
		v.addf("server.data_dir", "must be set")
	} else if fi, err := os.Stat(c.DataDir); err == nil && !fi.IsDir() {
		v.addf("server.data_dir", "%s exists and is not a folder", c.DataDir)
	}
	switch fc.Server.LogFormat {
	case "json", "text":
		c.LogFormat = fc.Server.LogFormat
	default:
		v.addf("server.log_format", "%q: want \"json\" or \"text\"", fc.Server.LogFormat)
	}
	if err := c.LogLevel.UnmarshalText([]byte(fc.Server.LogLevel)); err != nil {
		v.addf("server.log_level", "%q: want debug, info, warn or error", fc.Server.LogLevel)
	}

	// [smtp]
	s := fc.SMTP
	v.listen("smtp.submission_listen", s.SubmissionListen)
	v.listen("smtp.submissions_listen", s.SubmissionsListen)
	v.listen("smtp.mx_listen", s.MXListen)
	c.SubmissionListen, c.SubmissionsListen, c.MXListen = s.SubmissionListen, s.SubmissionsListen, s.MXListen
	if c.SubmissionListen == "" && c.SubmissionsListen == "" && c.MXListen == "" {
		v.addf("smtp", "every listener is disabled; set submission_listen, submissions_listen or mx_listen")
	}
	for i, n := range s.TrustedNetworks {
		p, err := parsePrefix(n)
		if err != nil {
			v.addf(fmt.Sprintf("smtp.trusted_networks[%d]", i), "%q is not an address or CIDR prefix", n)
			continue
		}
		if p.Bits() == 0 {
			// An open relay by configuration: refuse it.
			v.addf(fmt.Sprintf("smtp.trusted_networks[%d]", i), "%q trusts every address; that is an open relay", n)
		}
		c.TrustedNetworks = append(c.TrustedNetworks, p)
	}
	v.positive("smtp.max_message_bytes", s.MaxMessageBytes)
	v.positive("smtp.max_recipients", int64(s.MaxRecipients))
	v.positive("smtp.max_header_bytes", int64(s.MaxHeaderBytes))
	v.positive("smtp.max_conns_per_ip", int64(s.MaxConnsPerIP))
	v.positive("smtp.max_conns", int64(s.MaxConns))
	v.positive("smtp.min_data_rate", int64(s.MinDataRate))
	v.positive("smtp.max_errors", int64(s.MaxErrors))
	v.positive("smtp.max_junk_commands", int64(s.MaxJunkCommands))
	v.positive("smtp.max_auth_failures", int64(s.MaxAuthFailures))
	if s.MaxConnsPerIP > s.MaxConns && s.MaxConns > 0 {
		v.addf("smtp.max_conns_per_ip", "%d is more than smtp.max_conns (%d)", s.MaxConnsPerIP, s.MaxConns)
	}
	if s.MaxHeaderBytes > 0 && int64(s.MaxHeaderBytes) > s.MaxMessageBytes && s.MaxMessageBytes > 0 {
		v.addf("smtp.max_header_bytes", "%d is more than smtp.max_message_bytes (%d)", s.MaxHeaderBytes, s.MaxMessageBytes)
	}
	c.MaxMessageBytes, c.MaxRecipients, c.MaxHeaderBytes = s.MaxMessageBytes, s.MaxRecipients, s.MaxHeaderBytes
	c.MaxConnsPerIP, c.MaxConns, c.MinDataRate, c.MaxErrors = s.MaxConnsPerIP, s.MaxConns, s.MinDataRate, s.MaxErrors
	c.MaxJunkCommands, c.MaxAuthFailures = s.MaxJunkCommands, s.MaxAuthFailures
	c.GreetWait = v.duration("smtp.greet_wait", s.GreetWait, -time.Hour)
	if c.GreetWait > 30*time.Second {
		v.addf("smtp.greet_wait", "%s is longer than 30s; clients would time out", s.GreetWait)
	}
	c.AuthFailureWindow = v.duration("smtp.auth_failure_window", s.AuthFailureWindow, time.Second)
	c.IdleTimeout = v.duration("smtp.idle_timeout", s.IdleTimeout, time.Second)
	c.DataTimeout = v.duration("smtp.data_timeout", s.DataTimeout, time.Second)

	// [tls]
	c.CertFile = v.file("tls.cert_file", fc.TLS.CertFile, false)
	c.KeyFile = v.file("tls.key_file", fc.TLS.KeyFile, true)
	for i, f := range fc.TLS.CAFiles {
		c.CAFiles = append(c.CAFiles, v.file(fmt.Sprintf("tls.ca_files[%d]", i), f, false))
	}
	c.ReloadInterval = v.duration("tls.reload_interval", fc.TLS.ReloadInterval, 0)
	if c.ReloadInterval > 0 && c.ReloadInterval < time.Second {
		v.addf("tls.reload_interval", "%s is below the minimum 1s (0 reloads only on SIGHUP)", c.ReloadInterval)
	}

	// [relay]
	r := fc.Relay
	c.SpoolKeyFile = v.file("relay.spool_key_file", r.SpoolKeyFile, true)
	c.MaildirRoot = v.path(r.MaildirRoot)
	if c.MaildirRoot == "" {
		c.MaildirRoot = c.defaultMaildir()
	}
	v.positive("relay.hop_concurrency", int64(r.HopConcurrency))
	c.HopConcurrency = r.HopConcurrency
	v.positive("relay.concurrency", int64(r.Concurrency))
	c.Concurrency = r.Concurrency
	c.AttemptTimeout = v.duration("relay.attempt_timeout", r.AttemptTimeout, time.Second)
	c.ConnIdle = v.duration("relay.connection_idle_timeout", r.ConnIdle, time.Second)
	c.RetryMin = v.duration("relay.retry_min", r.RetryMin, time.Second)
	c.RetryMax = v.duration("relay.retry_max", r.RetryMax, time.Second)
	if v.ok("relay.retry_min", "relay.retry_max") && c.RetryMax < c.RetryMin {
		v.addf("relay.retry_max", "%s is less than relay.retry_min (%s)", r.RetryMax, r.RetryMin)
	}
	c.DelayWarnAfter = v.duration("relay.delay_warn_after", r.DelayWarnAfter, time.Minute)
	c.GiveUpAfter = v.duration("relay.give_up_after", r.GiveUpAfter, time.Minute)
	if v.ok("relay.give_up_after", "relay.delay_warn_after") && c.GiveUpAfter <= c.DelayWarnAfter {
		v.addf("relay.give_up_after", "%s must be longer than relay.delay_warn_after (%s)", r.GiveUpAfter, r.DelayWarnAfter)
	}

	// [admin]
	a := fc.Admin
	c.AdminListen = a.Listen
	if a.Listen != "" {
		v.listen("admin.listen", a.Listen)
		if host, _, err := net.SplitHostPort(a.Listen); err == nil && !a.AllowNonLoopback && !isLoopbackHost(host) {
			v.addf("admin.listen", "%q is not a loopback address; the admin API belongs on 127.0.0.1 or ::1 (set admin.allow_non_loopback = true to override)", a.Listen)
		}
		c.AdminTokenFile = v.file("admin.token_file", a.TokenFile, true)
		if c.AdminTokenFile != "" {
			if tok, err := os.ReadFile(c.AdminTokenFile); err == nil && len(strings.TrimSpace(string(tok))) < admin.MinTokenLength {
				v.addf("admin.token_file", "the token is shorter than %d characters", admin.MinTokenLength)
			}
		}
	}

	// [directory]
	d := fc.Directory
	c.ChallengeFrom = d.ChallengeFrom
	if c.ChallengeFrom == "" {
		c.ChallengeFrom = "verify@" + c.Hostname // not postmaster: replies to it are read as challenge answers, and RFC 5321 §4.5.1 postmaster mail must reach a person
	}
	if a, err := directory.NormaliseAddress(c.ChallengeFrom); err != nil || !strings.Contains(a, "@") {
		switch {
		case d.ChallengeFrom == "" && !v.ok("server.hostname"):
			// the hostname's problem is already reported
		case d.ChallengeFrom == "":
			v.addf("directory.challenge_from", "not set, and the default %q is not a mail address (server.hostname has no domain); set it", c.ChallengeFrom)
		default:
			v.addf("directory.challenge_from", "%q is not a mail address", c.ChallengeFrom)
		}
	} else {
		c.ChallengeFrom = a
	}
	c.ReverifyAfter = v.duration("directory.reverify_after", d.ReverifyAfter, 24*time.Hour)
	c.WarnBefore = v.duration("directory.warn_before", d.WarnBefore, 0)
	if v.ok("directory.warn_before", "directory.reverify_after") && c.WarnBefore >= c.ReverifyAfter {
		v.addf("directory.warn_before", "%s must be shorter than directory.reverify_after (%s)", d.WarnBefore, d.ReverifyAfter)
	}
	c.ExpiryCheck = v.duration("directory.expiry_check", d.ExpiryCheck, time.Minute)
	c.AuthCacheTTL = v.duration("directory.auth_cache_ttl", d.AuthCacheTTL, 0)
	if c.AuthCacheTTL > time.Hour {
		v.addf("directory.auth_cache_ttl", "%s is above the maximum 1h (a remembered login should not outlive a working session by much)", d.AuthCacheTTL)
	}
	if d.SummaryTo != "" {
		a, err := directory.NormaliseAddress(d.SummaryTo)
		if err != nil || !strings.Contains(a, "@") {
			v.addf("directory.summary_to", "%q is not a mail address", d.SummaryTo)
		}
		c.SummaryTo = a
	}

	// [smime]
	m := fc.SMIME
	c.SMIMEKeysDir = v.path(m.KeysDir)
	if c.SMIMEKeysDir == "" {
		v.addf("smime.keys_dir", "must be set")
	} else if fi, err := os.Stat(c.SMIMEKeysDir); err != nil || !fi.IsDir() {
		v.addf("smime.keys_dir", "no such folder: %s", c.SMIMEKeysDir)
	}
	if len(m.TrustAnchors) == 0 {
		// Fail closed: without anchors no certificate can be trusted, and
		// mail must not leave unencrypted.
		v.addf("smime.trust_anchors", "must list at least one PEM file of the CAs that may vouch for NHS endpoints' S/MIME certificates")
	}
	for i, f := range m.TrustAnchors {
		c.SMIMETrustAnchors = append(c.SMIMETrustAnchors, v.file(fmt.Sprintf("smime.trust_anchors[%d]", i), f, false))
	}
	v.smimeTrust(c, m)
	v.federation(c, fc.Federation) // federation_config.go
	c.RelayODS = strings.ToUpper(strings.TrimSpace(m.RelayODS))
	if c.RelayODS != "" && !certs.IsODSCode(c.RelayODS) {
		v.addf("smime.relay_ods", "%q is not an ODS code", m.RelayODS)
	}
	c.LegacyKeyTransport = m.LegacyKeyTransport
	c.Notices = v.notices(fc.Notices) // notices_config.go

	c.Fax = fc.Fax.validate(v, c.Hostname) // config_fax.go
	v.redis(c, fc.Redis)                   // config_redis.go
	v.receipts(c, fc.Receipts)             // config_receipts.go

	if len(v.errs) == 0 {
		// The checks serve's packages make at start-up, on a file that
		// passed its own: after a file problem, values derived from the
		// bad one (challenge_from from hostname) would be reported twice.
		v.packageProblems(c)
	}
	return c, v.errs
}

// parsePrefix accepts "10.0.0.0/8", "::1/128" or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
