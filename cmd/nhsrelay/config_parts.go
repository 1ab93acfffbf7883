package main

import (
	"errors"
	"regexp"
	"time"

	"nhsrelay/directory"
	"nhsrelay/relay"
	"nhsrelay/relay/smimepolicy"
	"nhsrelay/smtpd"
)

// The packages' Configs as the file sets them: the settings only. serve
// adds the running parts (stores, TLS, loggers...) and the packages check
// the whole at start-up; check-config runs each package's ValidateSettings
// on the same values (packageProblems), so a file check-config passes does
// not then fail serve.

func smtpdConfig(c *config) smtpd.Config {
	return smtpd.Config{
		Hostname: c.Hostname, TrustedNetworks: c.TrustedNetworks, MaxMessageBytes: c.MaxMessageBytes,
		MaxRecipients: c.MaxRecipients, MaxHeaderBytes: c.MaxHeaderBytes,
		MaxConnsPerIP: c.MaxConnsPerIP, MaxConns: c.MaxConns, IdleTimeout: c.IdleTimeout,
		DataTimeout: c.DataTimeout, MinDataRate: c.MinDataRate, MaxErrors: c.MaxErrors,
		MaxJunkCommands: c.MaxJunkCommands, GreetWait: c.GreetWait,
		MaxAuthFailures: c.MaxAuthFailures, AuthFailureWindow: c.AuthFailureWindow,
	}
}

func relayConfig(c *config) relay.Config {
	return relay.Config{
		Hostname: c.Hostname, SpoolDir: c.SpoolDir(), MaildirRoot: c.MaildirRoot,
		HopConcurrency: c.HopConcurrency, Concurrency: c.Concurrency,
		AttemptTimeout: c.AttemptTimeout, IdleTimeout: c.ConnIdle, RetryMin: c.RetryMin, RetryMax: c.RetryMax,
		DelayWarnAfter: c.DelayWarnAfter, GiveUpAfter: c.GiveUpAfter,
	}
}

func smimePolicyConfig(c *config) smimepolicy.Config {
	return smimepolicy.Config{
		Hostname: c.Hostname, KeysDir: c.SMIMEKeysDir, RelayODS: c.RelayODS, LegacyKeyTransport: c.LegacyKeyTransport,
		QuarantineDir: c.QuarantineDir(), MaildirRoot: c.MaildirRoot,
	}
}

func directoryConfig(c *config) directory.Config {
	return directory.Config{
		ChallengeFrom: c.ChallengeFrom, ReverifyAfter: c.ReverifyAfter, WarnBefore: c.WarnBefore,
		AuthCacheTTL: c.AuthCacheTTL,
	}
}

// packageProblems runs each package's ValidateSettings on c. A problem
// is reported under the key of the first config field it names
// (package fields carry the names of c's fields: Hostname, RetryMax...),
// else under the package's table; one whose key already has a problem is
// left out, as the file's own check said it first.
func (v *validator) packageProblems(c *config) {
	for _, p := range []struct {
		table string
		err   error
	}{
		{"smtp", smtpdConfig(c).ValidateSettings()},
		{"relay", relayConfig(c).ValidateSettings()},
		{"smime", smimePolicyConfig(c).ValidateSettings()},
		{"directory", directoryConfig(c).ValidateSettings()},
	} {
		for _, err := range unjoinAll(p.err) {
			key := p.table
			for _, w := range fieldName.FindAllString(err.Error(), -1) {
				if k, ok := fieldKeys[w]; ok {
					key = k
					break
				}
			}
			if v.ok(key) {
				v.addf(key, "%v", err)
			}
		}
	}
}

// fieldName matches the Go field names in a package's error text.
var fieldName = regexp.MustCompile(`\b[A-Z][A-Za-z]+\b`)

// fieldKeys maps the package Config field names to config keys where the
// two differ in more than case (the rest come from config's key tags).
var fieldKeys = func() map[string]string {
	m := configFieldKeys()
	m["IdleTimeout"] = "smtp.idle_timeout" // relay's IdleTimeout is ConnIdle; smtpd's is reported first
	m["KeysDir"] = "smime.keys_dir"
	m["QuarantineDir"] = "server.data_dir"
	return m
}()

// unjoinAll flattens nested errors.Join results.
func unjoinAll(err error) []error {
	if err == nil {
		return nil
	}
	var j interface{ Unwrap() []error }
	if !errors.As(err, &j) {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, unjoinAll(e)...)
	}
	return out
}

// durationDefault writes a package default as a config file value.
func durationDefault(d time.Duration) string { return d.String() }
