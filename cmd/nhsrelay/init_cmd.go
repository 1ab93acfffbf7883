package main

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"nhsrelay/audit"
	"nhsrelay/certs"
	"nhsrelay/directory"
	"nhsrelay/directory/boltstore"
	"nhsrelay/relay/spool"
	"nhsrelay/smtpd"
)

// Development ports: unprivileged, so `make run` needs no root, and on
// loopback, so a development instance is never reachable from outside.
const (
	devSubmission  = "127.0.0.1:2587"
	devSubmissions = "127.0.0.1:2465"
	devMX          = "127.0.0.1:2525"
	devAdmin       = "127.0.0.1:8025"
)

// initLayout names what init writes inside DIR.
type initLayout struct {
	dir        string
	config     string
	caDir      string
	tlsPrefix  string // tls/server.crt, tls/server.key
	spoolKey   string
	adminToken string
	keysDir    string // S/MIME keys of the sample organisation and endpoints
	dataDir    string
}

func newInitLayout(dir string) initLayout {
	return initLayout{
		dir:        dir,
		config:     filepath.Join(dir, "nhsrelay.toml"),
		caDir:      filepath.Join(dir, "ca"),
		tlsPrefix:  filepath.Join(dir, "tls", "server"),
		spoolKey:   filepath.Join(dir, "spool.key"),
		adminToken: filepath.Join(dir, "admin.token"),
		keysDir:    filepath.Join(dir, "keys"),
		dataDir:    filepath.Join(dir, "data"),
	}
}

// created lists what init would create, for the "exists" check and the
// clean-up after a failure.
func (l initLayout) created() []string {
	return []string{l.config, l.caDir, filepath.Dir(l.tlsPrefix), l.spoolKey, l.adminToken, l.keysDir, l.dataDir}
}

// runInit writes a development instance into DIR: config, CA, TLS
// certificate, spool key, admin token, sample directory and account.
func runInit(args []string) error {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	hostname := fs.String("hostname", "localhost", "host `name` for the greeting and the TLS certificate")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: nhsrelay init [-hostname NAME] DIR\n\n"+
			"Writes DIR/nhsrelay.toml, a development CA, a TLS certificate, a spool key,\n"+
			"an admin token, a sample directory and a sample sender account.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("want exactly one DIR")
	}
	if !smtpd.ValidHostname(*hostname) {
		return fmt.Errorf("-hostname %q is not a host name", *hostname)
	}
	l := newInitLayout(fs.Arg(0))
	if _, err := os.Stat(l.config); err == nil {
		return fmt.Errorf("%s exists; init never overwrites a configuration (remove the folder to start again)", l.config)
	}
	for _, p := range l.created() {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s exists; init writes only into a new or empty folder", p)
		}
	}
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", l.dir, err)
	}
	fmt.Fprintf(os.Stderr, "nhsrelay init: writing %s (new RSA keys take a few seconds)...\n", l.dir)
	s, err := writeInit(context.Background(), l, *hostname)
	if err != nil {
		for _, p := range l.created() { // leave nothing half-made for the next try
			os.RemoveAll(p)
		}
		return err
	}
	printInitSummary(os.Stdout, l, s)
	return nil
}

// initSummary is what the operator must see once.
type initSummary struct {
	hostname        string
	hosts           []string
	user, password  string
	from, to        string
	orgs, endpoints int
}

func writeInit(ctx context.Context, l initLayout, hostname string) (initSummary, error) {
	s := initSummary{hostname: hostname}
	ca, err := certs.InitCA(l.caDir, "nhsrelay development CA ("+hostname+")")
	if err != nil {
		return s, fmt.Errorf("development CA: %w", err)
	}
	s.hosts = uniq(hostname, "localhost", "127.0.0.1", "::1")
	certPEM, keyPEM, err := ca.IssueTLS(s.hosts)
	if err != nil {
		return s, fmt.Errorf("TLS certificate: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(l.tlsPrefix), 0o700); err != nil {
		return s, err
	}
	if _, _, err := certs.WritePair(l.tlsPrefix, certPEM, keyPEM); err != nil {
		return s, fmt.Errorf("TLS certificate: %w", err)
	}
	if err := spool.CreateKey(l.spoolKey); err != nil {
		return s, fmt.Errorf("spool key: %w", err)
	}
	if err := writeSecret(l.adminToken, randomHex(32)+"\n"); err != nil {
		return s, fmt.Errorf("admin token: %w", err)
	}

	if err := os.MkdirAll(l.keysDir, 0o700); err != nil {
		return s, err
	}
	text, err := devConfig(hostname)
	if err != nil {
		return s, err
	}
	// Write the config only once it validates against the files above, so
	// init never leaves a config that serve would refuse.
	abs, err := filepath.Abs(l.config)
	if err != nil {
		return s, err
	}
	cfg, err := parseConfig(abs, text)
	if err != nil {
		return s, fmt.Errorf("the generated config does not validate (a bug): %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return s, err
	}

	if err := seedDirectory(ctx, cfg, ca, l.keysDir, &s); err != nil {
		return s, fmt.Errorf("sample directory: %w", err)
	}
	if err := writeSecret(l.config, text); err != nil {
		return s, fmt.Errorf("config: %w", err)
	}
	return s, nil
}

// sampleRelayODS is the organisation that runs the sample relay.
const sampleRelayODS = "A81001"

// devConfig fills in the example for a development instance.
func devConfig(hostname string) (string, error) {
	text := exampleConfig
	for _, kv := range [][2]string{
		{"hostname", strconv.Quote(hostname)},
		{"log_format", `"text"`},
		{"submission_listen", strconv.Quote(devSubmission)},
		{"submissions_listen", strconv.Quote(devSubmissions)},
		{"mx_listen", strconv.Quote(devMX)},
		{"ca_files", `["ca/` + certs.CACertFile + `"]`},
		{"listen", strconv.Quote(devAdmin)},
		{"challenge_from", strconv.Quote("verification@" + sampleDomain)},
		{"trust_anchors", `["ca/` + certs.CACertFile + `"]`},
		// The development CA issues the organisation signing certificates
		// too, so its ODS codes are believed.
		{"org_cas", `["ca/` + certs.CACertFile + `"]`},
		// The sample relay is run by the practice, so its own mail (DSNs,
		// trusted networks) is signed with the practice's key rather than held.
		{"relay_ods", strconv.Quote(sampleRelayODS)},
	} {
		var ok bool
		if text, ok = setKey(text, kv[0], kv[1]); !ok {
			return "", fmt.Errorf("example config has no key %s (a bug)", kv[0])
		}
	}
	header := "# Written by `nhsrelay init` on " + time.Now().UTC().Format(time.DateOnly) +
		" for development: loopback listeners on\n# unprivileged ports, a development CA (ca/) and sample data.\n#\n"
	return header + text, nil
}

// A sample directory shaped like ODS data: two organisations hosted here
// (verified by attestation), one remote practice still pending, one remote
// pharmacy suspended. Codes and names are made up; nhs.example is reserved
// (RFC 2606).
const (
	sampleDomain     = "nhs.example"
	sampleSenderUser = "riverside"
	sampleSender     = "reception.a81001@nhs.example" // hosted: the account's own mailbox
	sampleRecipient  = "referrals.rx9@nhs.example"    // hosted: where the first message goes
)

func sampleOrgs() []directory.Organisation {
	return []directory.Organisation{
		{ODS: "A81001", Name: "Riverside Medical Practice", Kind: "gp-practice", Status: directory.OrgActive,
			Address: []string{"1 River Street", "Leeds"}, Postcode: "LS1 4AP", Phone: "0113 496 0000", Source: directory.SourceAdmin},
		{ODS: "RX9", Name: "Northfield Teaching Hospitals NHS Trust", Kind: "trust", Status: directory.OrgActive,
			Address: []string{"Northfield Road", "Leeds"}, Postcode: "LS9 7TF", Phone: "0113 496 0100", Source: directory.SourceAdmin},
		{ODS: "B82005", Name: "Hillside Surgery", Kind: "gp-practice", Status: directory.OrgActive,
			Address: []string{"2 Hill Lane", "York"}, Postcode: "YO1 7HH", Source: directory.SourceAdmin},
		{ODS: "FA123", Name: "Harbour Pharmacy", Kind: "pharmacy", Status: directory.OrgActive,
			Address: []string{"3 Quay Side", "Whitby"}, Postcode: "YO21 3PU", Source: directory.SourceAdmin},
	}
}

type sampleEndpoint struct {
	e       directory.Endpoint
	verify  bool   // attest it
	suspend string // suspend it with this reason
	smime   bool   // issue it an S/MIME certificate
}

func sampleEndpoints() []sampleEndpoint {
	return []sampleEndpoint{
		{e: directory.Endpoint{Address: sampleSender, ODS: "A81001", Purpose: directory.PurposeGeneral,
			NextHop: directory.NextHop{Kind: directory.HopHosted}, Contacts: []string{"practice.manager.a81001@nhs.example"}},
			verify: true, smime: true},
		{e: directory.Endpoint{Address: sampleRecipient, ODS: "RX9", Purpose: directory.PurposeReferrals,
			NextHop: directory.NextHop{Kind: directory.HopHosted}, Contacts: []string{"it.rx9@nhs.example"}},
			verify: true, smime: true},
		{e: directory.Endpoint{Address: "admin.b82005@hillside.nhs.example", ODS: "B82005", Purpose: directory.PurposeGeneral,
			NextHop: directory.NextHop{Kind: directory.HopMX}}},
		{e: directory.Endpoint{Address: "dispensary.fa123@harbour.nhs.example", ODS: "FA123", Purpose: directory.PurposePrescriptions,
			NextHop: directory.NextHop{Kind: directory.HopHost, Host: "mail.harbour.nhs.example:25"}},
			suspend: "sample data: the pharmacy has moved to a new address"},
	}
}

// seedDirectory writes the sample organisations, endpoints and account
// through the directory itself, so the sample is validated and audited as
// an administrator's changes would be.
func seedDirectory(ctx context.Context, cfg *config, ca *certs.CA, keysDir string, s *initSummary) (err error) {
	ctx = audit.WithActor(ctx, "init")
	alog, err := audit.Open(cfg.AuditLogPath(), time.Now)
	if err != nil {
		return err
	}
	defer closeInto(&err, alog.Close)
	store, err := boltstore.Open(cfg.DirectoryDB())
	if err != nil {
		return err
	}
	defer closeInto(&err, store.Close)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := directory.Open(ctx, directory.Config{Store: store, Logger: logger, Audit: alog,
		ChallengeFrom: cfg.ChallengeFrom, ReverifyAfter: cfg.ReverifyAfter, WarnBefore: cfg.WarnBefore})
	if err != nil {
		return err
	}
	for _, o := range sampleOrgs() {
		if err := d.PutOrganisation(ctx, o); err != nil {
			return fmt.Errorf("organisation %s: %w", o.ODS, err)
		}
		s.orgs++
	}
	// The sending organisation's own certificate, for S/MIME signing.
	if _, err := issueSMIME(ca, keysDir, sampleRelayODS); err != nil {
		return err
	}
	for _, se := range sampleEndpoints() {
		e := se.e
		if se.smime {
			der, err := issueSMIME(ca, keysDir, e.Address)
			if err != nil {
				return err
			}
			e.Certificates = [][]byte{der}
		}
		e, err := d.AddEndpoint(ctx, e)
		if err != nil {
			return fmt.Errorf("endpoint %s: %w", se.e.Address, err)
		}
		if se.verify {
			if err := d.Attest(ctx, e.ID, "sample data for development"); err != nil {
				return fmt.Errorf("attest %s: %w", e.Address, err)
			}
		}
		if se.suspend != "" {
			if err := d.Suspend(ctx, e.ID, se.suspend); err != nil {
				return fmt.Errorf("suspend %s: %w", e.Address, err)
			}
		}
		s.endpoints++
	}
	s.password = randomPassword()
	hash, err := directory.HashPassword(s.password)
	if err != nil {
		return err
	}
	s.user, s.from, s.to = sampleSenderUser, sampleSender, sampleRecipient
	return d.PutAccount(ctx, directory.Account{Username: s.user, PasswordHash: hash, ODS: "A81001",
		Addresses: []string{sampleSender}})
}

// issueSMIME issues an S/MIME certificate for subject (an address or an ODS
// code), writes keysDir/<subject>.crt and .key (0600), and returns the
// certificate's DER for the directory.
func issueSMIME(ca *certs.CA, keysDir, subject string) ([]byte, error) {
	certPEM, keyPEM, err := ca.IssueSMIME(subject)
	if err != nil {
		return nil, fmt.Errorf("S/MIME certificate for %s: %w", subject, err)
	}
	if _, _, err := certs.WritePair(filepath.Join(keysDir, subject), certPEM, keyPEM); err != nil {
		return nil, fmt.Errorf("S/MIME certificate for %s: %w", subject, err)
	}
	chain, err := certs.ParseCertificates(certPEM)
	if err != nil || len(chain) == 0 {
		return nil, fmt.Errorf("S/MIME certificate for %s: %v", subject, err)
	}
	return chain[0].Raw, nil
}

func printInitSummary(w io.Writer, l initLayout, s initSummary) {
	ca := filepath.Join(l.caDir, certs.CACertFile)
	fmt.Fprintf(w, `nhsrelay init: wrote a development instance in %s

  config           %s
  development CA   %s  (trust it in test clients only)
  TLS certificate  %s.crt for %s
  spool key        %s  (encrypts queued mail; back it up)
  admin token      %s
  S/MIME keys      %s
  directory        %d organisations, %d endpoints: %s and %s hosted here
                   and verified, one remote pending, one remote suspended

Sample sender account. The password is shown only now; the directory keeps a
bcrypt hash of it.
  username  %s
  password  %s
  sends as  %s

Start the server:
  nhsrelay serve -c %s
Send a first message (from another terminal):
  %s
`, l.dir, l.config, ca, l.tlsPrefix, strings.Join(s.hosts, ", "), l.spoolKey, l.adminToken, l.keysDir,
		s.orgs, s.endpoints, s.from, s.to, s.user, s.password, s.from, l.config,
		swaksLine(strings.TrimPrefix(devSubmission, "127.0.0.1:"), ca, s))
}

// swaksLine is the command that sends a first message over STARTTLS with
// AUTH, verifying the server's certificate against the development CA.
func swaksLine(port, caFile string, s initSummary) string {
	return fmt.Sprintf("swaks --server 127.0.0.1:%s --tls --tls-verify --tls-ca-path %s --auth PLAIN --auth-user %s --auth-password %s --from %s --to %s --header 'Subject: first message'",
		port, caFile, s.user, s.password, s.from, s.to)
}

// writeSecret creates path with mode 0600, never replacing a file, and
// makes it durable.
func writeSecret(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

// randomPassword is 120 bits in lower-case base32: no characters a shell
// or swaks would need quoted.
func randomPassword() string {
	b := make([]byte, 15)
	rand.Read(b)
	return strings.ToLower(base32.StdEncoding.EncodeToString(b))
}

func uniq(ss ...string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// closeInto runs close and keeps its error if *err is nil.
func closeInto(err *error, close func() error) {
	if cerr := close(); cerr != nil && *err == nil {
		*err = cerr
	}
}
