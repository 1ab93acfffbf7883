package main

import (
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"nhsrelay/directory"
	"nhsrelay/relay"
	"nhsrelay/smtpd"
)

// exampleConfig documents every key with its default; `nhsrelay init`
// writes it, filled in for development.
//
//go:embed nhsrelay.example.toml
var exampleConfig string

// fileConfig is the TOML file as written: durations and addresses are
// strings, checked and converted by validate into a config. Every key is
// documented in nhsrelay.example.toml and README.md.
type fileConfig struct {
	Server    fileServer    `toml:"server"`
	SMTP      fileSMTP      `toml:"smtp"`
	TLS       fileTLS       `toml:"tls"`
	Relay     fileRelay     `toml:"relay"`
	Admin     fileAdmin     `toml:"admin"`
	Directory fileDirectory `toml:"directory"`
	SMIME     fileSMIME     `toml:"smime"`
	Notices   fileNotices   `toml:"notices"` // notices_config.go
	// Federation is federation_config.go's [federation] table.
	Federation fileFederation `toml:"federation"`
	Fax        fileFax        `toml:"fax"`      // config_fax.go
	Redis      fileRedis      `toml:"redis"`    // cluster mode (config_redis.go)
	Receipts   fileReceipts   `toml:"receipts"` // config_receipts.go (issue 12)
}

type fileServer struct {
	Hostname  string `toml:"hostname"`
	DataDir   string `toml:"data_dir"`
	LogFormat string `toml:"log_format"`
	LogLevel  string `toml:"log_level"`
}

type fileSMTP struct {
	SubmissionListen  string   `toml:"submission_listen"`
	SubmissionsListen string   `toml:"submissions_listen"`
	MXListen          string   `toml:"mx_listen"`
	TrustedNetworks   []string `toml:"trusted_networks"`
	MaxMessageBytes   int64    `toml:"max_message_bytes"`
	MaxRecipients     int      `toml:"max_recipients"`
	MaxHeaderBytes    int      `toml:"max_header_bytes"`
	MaxConnsPerIP     int      `toml:"max_conns_per_ip"`
	MaxConns          int      `toml:"max_conns"`
	IdleTimeout       string   `toml:"idle_timeout"`
	DataTimeout       string   `toml:"data_timeout"`
	MinDataRate       int      `toml:"min_data_rate"`
	MaxErrors         int      `toml:"max_errors"`
	MaxJunkCommands   int      `toml:"max_junk_commands"`
	GreetWait         string   `toml:"greet_wait"`
	MaxAuthFailures   int      `toml:"max_auth_failures"`
	AuthFailureWindow string   `toml:"auth_failure_window"`
}

type fileTLS struct {
	CertFile       string   `toml:"cert_file"`
	KeyFile        string   `toml:"key_file"`
	CAFiles        []string `toml:"ca_files"`
	ReloadInterval string   `toml:"reload_interval"`
}

type fileRelay struct {
	SpoolKeyFile   string `toml:"spool_key_file"`
	MaildirRoot    string `toml:"maildir_root"`
	HopConcurrency int    `toml:"hop_concurrency"`
	Concurrency    int    `toml:"concurrency"`
	AttemptTimeout string `toml:"attempt_timeout"`
	ConnIdle       string `toml:"connection_idle_timeout"`
	RetryMin       string `toml:"retry_min"`
	RetryMax       string `toml:"retry_max"`
	DelayWarnAfter string `toml:"delay_warn_after"`
	GiveUpAfter    string `toml:"give_up_after"`
}

type fileAdmin struct {
	Listen           string `toml:"listen"`
	TokenFile        string `toml:"token_file"`
	AllowNonLoopback bool   `toml:"allow_non_loopback"`
}

type fileDirectory struct {
	ChallengeFrom string `toml:"challenge_from"`
	ReverifyAfter string `toml:"reverify_after"`
	WarnBefore    string `toml:"warn_before"`
	ExpiryCheck   string `toml:"expiry_check"`
	SummaryTo     string `toml:"summary_to"`
	AuthCacheTTL  string `toml:"auth_cache_ttl"`
}

type fileSMIME struct {
	KeysDir            string   `toml:"keys_dir"`
	TrustAnchors       []string `toml:"trust_anchors"`
	OrgCAs             []string `toml:"org_cas"`
	CRLs               []string `toml:"crls"`
	RelayODS           string   `toml:"relay_ods"`
	LegacyKeyTransport []string `toml:"legacy_key_transport"`
}

// defaultFileConfig holds the value of every key a file leaves out. The
// defaults are the secure, production choice: standard ports, admin API on
// loopback, limits as Postfix sets them or tighter. Where a package has a
// default, it is taken from the package (smtpd.Default..., relay.Default...,
// directory.Default...), so there is one source for each.
func defaultFileConfig() fileConfig {
	return fileConfig{
		Server: fileServer{DataDir: "data", LogFormat: "json", LogLevel: "info"},
		SMTP: fileSMTP{
			SubmissionListen:  ":587",
			SubmissionsListen: ":465",
			MXListen:          ":25",
			MaxMessageBytes:   smtpd.DefaultMaxMessageBytes,
			MaxRecipients:     smtpd.DefaultMaxRecipients,
			MaxHeaderBytes:    smtpd.DefaultMaxHeaderBytes,
			MaxConnsPerIP:     smtpd.DefaultMaxConnsPerIP,
			MaxConns:          smtpd.DefaultMaxConns,
			IdleTimeout:       durationDefault(smtpd.DefaultIdleTimeout),
			DataTimeout:       durationDefault(smtpd.DefaultDataTimeout),
			MinDataRate:       smtpd.DefaultMinDataRate,
			MaxErrors:         smtpd.DefaultMaxErrors,
			MaxJunkCommands:   smtpd.DefaultMaxJunkCommands,
			GreetWait:         durationDefault(smtpd.DefaultGreetWait),
			MaxAuthFailures:   smtpd.DefaultMaxAuthFailures,
			AuthFailureWindow: durationDefault(smtpd.DefaultAuthFailureWindow),
		},
		TLS: fileTLS{ReloadInterval: "1m"}, // issue 5: reload on SIGHUP and on file change
		Relay: fileRelay{
			SpoolKeyFile:   "spool.key",
			HopConcurrency: relay.DefaultHopConcurrency,
			Concurrency:    relay.DefaultConcurrency,
			AttemptTimeout: durationDefault(relay.DefaultAttemptTimeout),
			ConnIdle:       durationDefault(relay.DefaultIdleTimeout),
			RetryMin:       durationDefault(relay.DefaultRetryMin),
			RetryMax:       durationDefault(relay.DefaultRetryMax),
			DelayWarnAfter: durationDefault(relay.DefaultDelayWarnAfter),
			GiveUpAfter:    durationDefault(relay.DefaultGiveUpAfter),
		},
		Admin: fileAdmin{Listen: "127.0.0.1:8025", TokenFile: "admin.token"},
		Directory: fileDirectory{
			ReverifyAfter: durationDefault(directory.DefaultReverifyAfter),
			WarnBefore:    durationDefault(directory.DefaultWarnBefore),
			ExpiryCheck:   "24h",
			AuthCacheTTL:  durationDefault(directory.DefaultAuthCacheTTL),
		},
		SMIME:      fileSMIME{KeysDir: "keys"},
		Federation: fileFederation{PeerSyncInterval: "15m"},
		Notices:    defaultNotices(),
	}
}

// config is a checked fileConfig: durations parsed, networks parsed, every
// path absolute. The key tag names the file key a field comes from.
type config struct {
	Path string // the file it was read from

	Hostname  string     `key:"server.hostname"`
	DataDir   string     `key:"server.data_dir"`
	LogFormat string     `key:"server.log_format"` // "json" or "text"
	LogLevel  slog.Level `key:"server.log_level"`

	SubmissionListen  string         `key:"smtp.submission_listen"` // "" disables the listener
	SubmissionsListen string         `key:"smtp.submissions_listen"`
	MXListen          string         `key:"smtp.mx_listen"`
	TrustedNetworks   []netip.Prefix `key:"smtp.trusted_networks"`
	MaxMessageBytes   int64          `key:"smtp.max_message_bytes"`
	MaxRecipients     int            `key:"smtp.max_recipients"`
	MaxHeaderBytes    int            `key:"smtp.max_header_bytes"`
	MaxConnsPerIP     int            `key:"smtp.max_conns_per_ip"`
	MaxConns          int            `key:"smtp.max_conns"`
	IdleTimeout       time.Duration  `key:"smtp.idle_timeout"`
	DataTimeout       time.Duration  `key:"smtp.data_timeout"`
	MinDataRate       int            `key:"smtp.min_data_rate"`
	MaxErrors         int            `key:"smtp.max_errors"`
	MaxJunkCommands   int            `key:"smtp.max_junk_commands"`
	GreetWait         time.Duration  `key:"smtp.greet_wait"` // negative: no pregreet test
	MaxAuthFailures   int            `key:"smtp.max_auth_failures"`
	AuthFailureWindow time.Duration  `key:"smtp.auth_failure_window"`

	CertFile       string        `key:"tls.cert_file"`
	KeyFile        string        `key:"tls.key_file"`
	CAFiles        []string      `key:"tls.ca_files"`
	ReloadInterval time.Duration `key:"tls.reload_interval"` // 0: reload only on SIGHUP

	SpoolKeyFile   string        `key:"relay.spool_key_file"`
	MaildirRoot    string        `key:"relay.maildir_root"`
	HopConcurrency int           `key:"relay.hop_concurrency"`
	Concurrency    int           `key:"relay.concurrency"`
	AttemptTimeout time.Duration `key:"relay.attempt_timeout"`
	ConnIdle       time.Duration `key:"relay.connection_idle_timeout"`
	RetryMin       time.Duration `key:"relay.retry_min"`
	RetryMax       time.Duration `key:"relay.retry_max"`
	DelayWarnAfter time.Duration `key:"relay.delay_warn_after"`
	GiveUpAfter    time.Duration `key:"relay.give_up_after"`

	AdminListen    string `key:"admin.listen"` // "" disables the admin API
	AdminTokenFile string `key:"admin.token_file"`

	ChallengeFrom string        `key:"directory.challenge_from"`
	ReverifyAfter time.Duration `key:"directory.reverify_after"`
	WarnBefore    time.Duration `key:"directory.warn_before"`
	ExpiryCheck   time.Duration `key:"directory.expiry_check"`
	SummaryTo     string        `key:"directory.summary_to"`     // "" sends no summary mail
	AuthCacheTTL  time.Duration `key:"directory.auth_cache_ttl"` // 0: every login runs bcrypt

	SMIMEKeysDir       string   `key:"smime.keys_dir"`
	SMIMETrustAnchors  []string `key:"smime.trust_anchors"`
	SMIMEOrgCAs        []string `key:"smime.org_cas"`
	SMIMECRLs          []string `key:"smime.crls"`
	RelayODS           string   `key:"smime.relay_ods"`
	LegacyKeyTransport []string `key:"smime.legacy_key_transport"`

	Notices          noticesConfig `key:"notices.http_listen"` // the [notices] table, notices_config.go
	federationConfig               // [federation], federation_config.go
	Fax              faxConfig     // [fax], config_fax.go
	RedisURL         string        `key:"redis.url"`              // "" runs every store embedded (one node)
	StatusListen     string        `key:"receipts.status_listen"` // "" disables the senders' status API (config_receipts.go)
}

// configFieldKeys maps each config field name to its file key.
func configFieldKeys() map[string]string {
	m := map[string]string{}
	for _, f := range reflect.VisibleFields(reflect.TypeFor[config]()) { // embedded tables' fields too
		if k := f.Tag.Get("key"); k != "" {
			m[f.Name] = k
		}
	}
	return m
}

// Files that live in data_dir; not configurable, so that a backup of
// data_dir is a backup of the server's state.
func (c *config) SpoolDir() string       { return filepath.Join(c.DataDir, "spool") }
func (c *config) QueueDB() string        { return filepath.Join(c.DataDir, "queue.db") }
func (c *config) DirectoryDB() string    { return filepath.Join(c.DataDir, "directory.db") }
func (c *config) QuarantineDir() string  { return filepath.Join(c.DataDir, "quarantine") }
func (c *config) AuditLogPath() string   { return filepath.Join(c.DataDir, "audit.log") }
func (c *config) TimelineDB() string     { return filepath.Join(c.DataDir, "timeline.db") }
func (c *config) defaultMaildir() string { return filepath.Join(c.DataDir, "maildir") }
func (c *config) PeersFile() string      { return filepath.Join(c.DataDir, "peers.json") }

// loadConfig reads and checks the file at path. The error from a file that
// decodes but does not validate is an errors.Join of one error per problem,
// each naming its key.
func loadConfig(path string) (*config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return parseConfig(abs, string(data))
}

// parseConfig decodes and checks text as if read from the file at path
// (absolute), against which relative paths resolve.
func parseConfig(path, text string) (*config, error) {
	fc := defaultFileConfig()
	problems, err := decodeFile(text, &fc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c, errs := fc.validate(path)
	problems = append(problems, errs...)
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	return c, nil
}

// setKey replaces the value of the first line of a TOML text that assigns
// key ("key = ..."), keeping the line's indentation; ok is false if no line
// does. init uses it to fill in the example config.
func setKey(text, key, value string) (out string, ok bool) {
	lines := strings.SplitAfter(text, "\n")
	for i, l := range lines {
		trimmed := strings.TrimLeft(l, " \t")
		name, _, found := strings.Cut(trimmed, "=")
		if !found || strings.TrimSpace(name) != key || strings.HasPrefix(trimmed, "#") {
			continue
		}
		indent := l[:len(l)-len(trimmed)]
		nl := ""
		if strings.HasSuffix(l, "\n") {
			nl = "\n"
		}
		lines[i] = indent + key + " = " + value + nl
		return strings.Join(lines, ""), true
	}
	return text, false
}
