package main

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"nhsrelay/directory"
	"nhsrelay/faxbridge"
)

// fileFax is the [fax] table: the fax bridge (issue 10). Every key is
// optional; with enabled = false (the default) no fax intake runs.
type fileFax struct {
	Enabled          bool     `toml:"enabled"`
	From             string   `toml:"from"`
	Account          string   `toml:"account"`
	DomainMailbox    string   `toml:"domain_mailbox"`
	T37Domain        string   `toml:"t37_domain"`
	T37Gateways      []string `toml:"t37_gateways"`
	SpoolDir         string   `toml:"spool_dir"`
	SpoolRescan      string   `toml:"spool_rescan"`
	UploadListen     string   `toml:"upload_listen"`
	UploadMaxBytes   int64    `toml:"upload_max_bytes"`
	HylaFAXDIDCallID int      `toml:"hylafax_did_callid"`
	HylaFAXNumber    string   `toml:"hylafax_number"`
	DedupeWindow     string   `toml:"dedupe_window"`
}

// faxConfig is [fax], checked.
type faxConfig struct {
	Enabled          bool           `key:"fax.enabled"`
	From             string         `key:"fax.from"`
	Account          string         `key:"fax.account"`
	DomainMailbox    string         `key:"fax.domain_mailbox"`
	T37Domain        string         `key:"fax.t37_domain"`
	T37Gateways      []netip.Prefix `key:"fax.t37_gateways"`
	SpoolDir         string         `key:"fax.spool_dir"`
	SpoolRescan      time.Duration  `key:"fax.spool_rescan"`
	UploadListen     string         `key:"fax.upload_listen"`
	UploadMaxBytes   int64          `key:"fax.upload_max_bytes"`
	HylaFAXDIDCallID int            `key:"fax.hylafax_did_callid"`
	HylaFAXNumber    string         `key:"fax.hylafax_number"`
	DedupeWindow     time.Duration  `key:"fax.dedupe_window"`
}

// FaxDir is where the bridge keeps its state and dead letters.
func (c *config) FaxDir() string { return filepath.Join(c.DataDir, "fax") }

func (f fileFax) validate(v *validator, hostname string) faxConfig {
	c := faxConfig{Enabled: f.Enabled, From: f.From, Account: f.Account, DomainMailbox: f.DomainMailbox, T37Domain: strings.ToLower(f.T37Domain),
		SpoolDir: v.path(f.SpoolDir), UploadListen: f.UploadListen, UploadMaxBytes: f.UploadMaxBytes,
		HylaFAXDIDCallID: f.HylaFAXDIDCallID, HylaFAXNumber: f.HylaFAXNumber}
	if c.From == "" {
		c.From = "fax-bridge@" + hostname
	}
	if c.DomainMailbox == "" {
		c.DomainMailbox = "fax"
	}
	if _, err := directory.NormaliseAddress(c.From); c.Enabled && (err != nil || !strings.Contains(c.From, "@")) {
		v.addf("fax.from", "%q is not a mailbox (fax messages come from it)", c.From)
	}
	if c.T37Domain != "" {
		if _, err := directory.NormaliseAddress(c.T37Domain); err != nil || strings.Contains(c.T37Domain, "@") {
			v.addf("fax.t37_domain", "%q is not a domain (T.37 mail goes to FAX=<number>@<domain>)", f.T37Domain)
		}
	}
	for i, n := range f.T37Gateways {
		p, err := parsePrefix(n)
		if err != nil || p.Bits() == 0 {
			v.addf(fmt.Sprintf("fax.t37_gateways[%d]", i), "%q is not an address or CIDR prefix of your fax gateways", n)
			continue
		}
		c.T37Gateways = append(c.T37Gateways, p)
	}
	c.SpoolRescan = 30 * time.Second
	if f.SpoolRescan != "" {
		c.SpoolRescan = v.duration("fax.spool_rescan", f.SpoolRescan, time.Second)
	}
	c.DedupeWindow = 7 * 24 * time.Hour
	if f.DedupeWindow != "" {
		c.DedupeWindow = v.duration("fax.dedupe_window", f.DedupeWindow, 0)
	}
	if c.UploadMaxBytes == 0 {
		c.UploadMaxBytes = 20 << 20
	}
	v.positive("fax.upload_max_bytes", c.UploadMaxBytes)
	if c.HylaFAXDIDCallID < 0 || c.HylaFAXDIDCallID > 9 {
		v.addf("fax.hylafax_did_callid", "must be 0 (use hylafax_number) or the position 1..9 of the caller-ID argument holding the DID")
	}
	if c.HylaFAXNumber != "" {
		if _, err := directory.NormaliseFax(c.HylaFAXNumber); err != nil {
			v.addf("fax.hylafax_number", "%v", err)
		}
	}
	if c.Enabled && c.T37Domain == "" && c.SpoolDir == "" && c.UploadListen == "" {
		v.addf("fax.enabled", "no intake configured: set t37_domain, spool_dir or upload_listen")
	}
	return c
}

// faxBridgeConfig is the bridge's Config from [fax] (callers add the
// directory, queue and the rest).
func (c faxConfig) bridge() faxbridge.Config {
	return faxbridge.Config{From: c.From, Account: c.Account, DomainMailbox: c.DomainMailbox, DedupeWindow: c.DedupeWindow}
}
