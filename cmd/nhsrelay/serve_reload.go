package main

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"

	"nhsrelay/admin"
	"nhsrelay/smtpd"
)

// hotKey reports whether SIGHUP applies key to the running server. The
// SMTP limits here are the ones smtpd.Server.SetLimits takes; the rest of
// [smtp] is read by go-smtp per connection without synchronisation
// (max_message_bytes, max_recipients, idle_timeout) or binds sockets. The
// relay and the directory take their settings once, at start, so their
// keys need a restart too.
func hotKey(key string) bool {
	switch key {
	case "server.log_level",
		"smtp.trusted_networks", "smtp.max_header_bytes", "smtp.max_conns_per_ip", "smtp.max_conns",
		"smtp.data_timeout", "smtp.min_data_rate", "smtp.max_errors", "smtp.max_junk_commands",
		"smtp.greet_wait", "smtp.max_auth_failures", "smtp.auth_failure_window":
		return true
	}
	return false
}

// smtpLimits are cfg's run-time SMTP limits.
func smtpLimits(cfg *config) smtpd.Limits {
	return smtpd.Limits{
		TrustedNetworks: cfg.TrustedNetworks, MaxHeaderBytes: cfg.MaxHeaderBytes,
		MaxConnsPerIP: cfg.MaxConnsPerIP, MaxConns: cfg.MaxConns, DataTimeout: cfg.DataTimeout,
		MinDataRate: cfg.MinDataRate, MaxErrors: cfg.MaxErrors, MaxJunkCommands: cfg.MaxJunkCommands,
		GreetWait: cfg.GreetWait, MaxAuthFailures: cfg.MaxAuthFailures, AuthFailureWindow: cfg.AuthFailureWindow,
	}
}

// keyError is one config problem, naming the key it is about.
type keyError struct {
	Key     string // "smtp.max_conns", "smtp.trusted_networks[2]"
	Problem string
}

func (e *keyError) Error() string { return e.Key + ": " + e.Problem }

// problemKey is the key a loadConfig problem names, or "" (a file that
// cannot be read or is not TOML).
func problemKey(err error) string {
	var ke *keyError
	if errors.As(err, &ke) {
		return ke.Key
	}
	return ""
}

// reloadable is a part that re-reads its files: the TLS Reloader, the
// S/MIME policy (key pairs, and the trust: anchors, organisation CAs,
// CRLs).
type reloadable interface{ Reload() error }

// reloadTargets are the running parts a SIGHUP reaches.
type reloadTargets struct {
	level *slog.LevelVar
	tls   reloadable
	token *admin.Token // nil when the admin API is off
	smime reloadable
	smtp  interface{ SetLimits(smtpd.Limits) error }
}

// reloadResult says what a SIGHUP did, for the log and the audit record.
type reloadResult struct {
	refused  bool     // the config did not validate: nothing changed
	problems []error  // why, one per key
	applied  []string // keys now in force
	restart  []string // keys that differ from the running config but need a restart
	failed   []string // parts whose files could not be re-read (old ones kept)
}

func (r reloadResult) String() string {
	if r.refused {
		return fmt.Sprintf("config refused (%d problems); nothing changed", len(r.problems))
	}
	s := "applied: " + orNone(r.applied) + "; restart needed: " + orNone(r.restart)
	if len(r.failed) > 0 {
		s += "; kept old: " + strings.Join(r.failed, ", ")
	}
	return s
}

func orNone(keys []string) string {
	if len(keys) == 0 {
		return "none"
	}
	return strings.Join(keys, ", ")
}

// reload is SIGHUP. It reads the config file first: one that no longer
// validates is refused whole — every problem is logged under its key and
// nothing changes, not even the certificates, so that a half-edited file
// never half-applies. Otherwise the hot keys (hotKey) are applied, the TLS
// certificate, admin token, S/MIME key pairs and S/MIME trust files
// (smime.trust_anchors, smime.org_cas, smime.crls, at the paths the server
// started with) are re-read (each keeps its old version if its files are
// unusable), and the changed keys that
// need a restart are logged. The returned config is the one running: the
// old one with the hot keys of the new, so a later SIGHUP still reports
// restart-only keys against what the process actually runs.
func reload(cur *config, t reloadTargets, logger *slog.Logger) (*config, reloadResult) {
	logger.Info("SIGHUP: reloading config, certificates, S/MIME keys and trust (anchors, organisation CAs, CRLs) and admin token", "config", cur.Path)
	next, err := loadConfig(cur.Path)
	if err != nil {
		res := reloadResult{refused: true, problems: unjoin(err)}
		for _, p := range res.problems {
			logger.Error("config reload refused", "key", problemKey(p), "problem", p.Error())
		}
		logger.Error("config reload refused; nothing changed, the running config stays", "problems", len(res.problems))
		return cur, res
	}
	var res reloadResult
	hot, restart := configDiff(cur, next)
	// smtpd checks limits again; a refusal there (a bug: config checks
	// more) also changes nothing.
	if err := t.smtp.SetLimits(smtpLimits(next)); err != nil {
		logger.Error("config reload refused by smtpd; nothing changed", "err", err)
		return cur, reloadResult{refused: true, problems: unjoin(err)}
	}
	t.level.Set(next.LogLevel)
	res.applied, res.restart = hot, restart

	if err := t.tls.Reload(); err != nil {
		res.failed = append(res.failed, "tls certificate")
		logger.Error("TLS reload failed; keeping the old certificate", "err", err)
	}
	if t.token != nil {
		if err := t.token.Reload(); err != nil {
			res.failed = append(res.failed, "admin token")
			logger.Error("admin token reload failed; keeping the old token", "err", err)
		}
	}
	if err := t.smime.Reload(); err != nil {
		res.failed = append(res.failed, "S/MIME keys or trust")
		logger.Error("S/MIME key or trust reload failed", "err", err)
	}
	logger.Info("config reloaded", "applied", orNone(hot), "restart_needed", orNone(restart))
	if len(restart) > 0 {
		logger.Warn("config changes that take effect only after a restart", "keys", restart)
	}
	return withHot(cur, next), res
}

// configDiff names the keys whose values differ between a and b, split
// into the ones reload applies and the ones that need a restart.
func configDiff(a, b *config) (hot, restart []string) {
	va, vb := reflect.ValueOf(*a), reflect.ValueOf(*b)
	for i := range va.NumField() {
		key := va.Type().Field(i).Tag.Get("key")
		if key == "" || reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			continue
		}
		if hotKey(key) {
			hot = append(hot, key)
		} else {
			restart = append(restart, key)
		}
	}
	return hot, restart
}

// withHot is cur with the hot keys' values taken from next.
func withHot(cur, next *config) *config {
	out := *cur
	vo, vn := reflect.ValueOf(&out).Elem(), reflect.ValueOf(*next)
	for i := range vo.NumField() {
		if hotKey(vo.Type().Field(i).Tag.Get("key")) {
			vo.Field(i).Set(vn.Field(i))
		}
	}
	return &out
}
