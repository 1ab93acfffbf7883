package smimepolicy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"nhsrelay/audit"
	"nhsrelay/certs"
	"nhsrelay/directory"
	"nhsrelay/relay"
	"nhsrelay/relay/spool"
)

// ErrNoKey means KeysDir holds no key pair under the name asked for.
var ErrNoKey = errors.New("smimepolicy: no key pair")

// Directory is what the policy asks of the directory: the endpoint for an
// address (recipients, From addresses, signers) and an organisation by ODS
// code (the signer of a delivery report from another relay).
// *directory.Directory satisfies it.
type Directory interface {
	Lookup(ctx context.Context, addr string) (directory.Endpoint, error)
	Organisation(ctx context.Context, ods string) (directory.Organisation, error)
}

// Accounts gives the organisation an authenticated sender sends for.
// *directory.Directory satisfies it.
type Accounts interface {
	Account(ctx context.Context, user string) (directory.Account, error)
}

// Config is what New needs.
type Config struct {
	// Hostname is this relay's name, in trace headers and as the domain of
	// notices' From (postmaster@Hostname).
	Hostname string
	// KeysDir holds PEM key pairs, loaded with certs.LoadKeyPair and
	// cached until Reload:
	//   <ODS>.crt, <ODS>.key         an organisation's signing pair
	//                                (ODS code in capitals, "A81001")
	//   <address>.crt, <address>.key a hosted endpoint's decryption pair
	//                                (address in lower case)
	// This is the layout `nhsrelay init` and `certs issue --smime` write.
	KeysDir string
	// Trust is what S/MIME validation trusts (certs.Trust): the anchors
	// (not the TLS roots) every certificate must chain to, the
	// organisation CAs whose certificates alone speak for an organisation
	// by ODS code, and the CRLs. Required, with Trust.Roots set.
	Trust *certs.Trust
	// LoadTrust, if set, builds Trust again from its files; Reload
	// (SIGHUP) calls it and swaps the result in, keeping the old Trust if
	// it fails. nil: Trust stays as it is.
	LoadTrust func() (*certs.Trust, error)
	Directory Directory
	Accounts  Accounts // nil: mail with an account is signed as RelayODS
	// RelayODS is the organisation whose key signs mail without an account
	// (the relay's DSNs and notices, trusted networks). Empty: such mail is
	// held for recipients that need S/MIME.
	RelayODS string
	// LegacyKeyTransport lists endpoint addresses (or IDs) an administrator
	// has allowed RSA PKCS#1 v1.5 key transport for, because their mail
	// client cannot read RSAES-OAEP. Every use is audited. Empty: never.
	LegacyKeyTransport []string
	// QuarantineDir keeps refused inbound messages, encrypted at rest with
	// QuarantineKey (the spool key) exactly as the spool keeps bodies, with
	// a <id>.json record (0600) of why. Required for Open.
	QuarantineDir string
	QuarantineKey []byte
	// MaildirRoot is the relay's Maildir root: a quarantine notice goes
	// into the endpoint's own mailbox, MaildirRoot/<address>.
	MaildirRoot string

	Now    func() time.Time // nil → time.Now
	Logger *slog.Logger     // nil → discard
	Audit  audit.Recorder   // nil → no audit events
}

// Policy is the S/MIME policy: a relay.Sealer for outbound mail and a
// relay.Opener for hosted endpoints. It is safe for concurrent use.
type Policy struct {
	cfg    Config
	log    *slog.Logger
	legacy map[string]bool
	quar   *spool.Spool

	trust atomic.Pointer[certs.Trust] // swapped whole by Reload

	mu   sync.RWMutex
	keys map[string]*certs.KeyPair // name → pair, loaded on first use
}

// ValidateSettings reports every problem with cfg's settings alone (not
// the trust, directory and other parts a running server passes in). New
// runs it; `nhsrelay check-config` runs it on the config file's values, so
// the two can never disagree.
func (cfg Config) ValidateSettings() error {
	var problems []error
	if cfg.Hostname == "" {
		problems = append(problems, errors.New("smimepolicy: Config.Hostname is empty"))
	}
	if cfg.KeysDir == "" {
		problems = append(problems, errors.New("KeysDir is empty"))
	}
	if cfg.QuarantineDir == "" {
		problems = append(problems, errors.New("QuarantineDir is empty"))
	}
	if cfg.RelayODS != "" && !certs.IsODSCode(cfg.RelayODS) {
		problems = append(problems, fmt.Errorf("RelayODS %q is not an ODS code", cfg.RelayODS))
	}
	if len(problems) > 0 {
		return fmt.Errorf("smimepolicy: config: %w", errors.Join(problems...))
	}
	return nil
}

// New checks cfg and opens the quarantine.
func New(cfg Config) (*Policy, error) {
	var problems []error
	if err := cfg.ValidateSettings(); err != nil {
		problems = append(problems, err)
	}
	if cfg.Trust == nil || cfg.Trust.Roots == nil {
		problems = append(problems, errors.New("smimepolicy: config: Trust.Roots (S/MIME trust anchors) is nil"))
	}
	if cfg.Directory == nil {
		problems = append(problems, errors.New("smimepolicy: config: Directory is nil"))
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	q, err := spool.Open(cfg.QuarantineDir, cfg.QuarantineKey)
	if err != nil {
		return nil, fmt.Errorf("smimepolicy: open quarantine: %w", err)
	}
	p := &Policy{cfg: cfg, log: cfg.Logger, legacy: map[string]bool{}, quar: q, keys: map[string]*certs.KeyPair{}}
	p.trust.Store(cfg.Trust)
	for _, a := range cfg.LegacyKeyTransport {
		p.legacy[strings.ToLower(strings.TrimSpace(a))] = true
	}
	return p, nil
}

// Sealer returns p as the relay's Sealer (it is also a
// relay.RecipientChecker).
func (p *Policy) Sealer() relay.Sealer { return p }

// Opener returns p as the relay's Opener.
func (p *Policy) Opener() relay.Opener { return p }

var (
	_ relay.Sealer           = (*Policy)(nil)
	_ relay.RecipientChecker = (*Policy)(nil)
	_ relay.Opener           = (*Policy)(nil)
)

// keyName checks that name can name files in KeysDir.
func keyName(name string) (string, bool) {
	if name == "" || len(name) > 254 || name[0] == '.' || strings.ContainsAny(name, "/\\\x00") {
		return "", false
	}
	return name, true
}

// orgKeyName and endpointKeyName are the KeysDir naming convention.
func orgKeyName(ods string) string       { return strings.ToUpper(ods) }
func endpointKeyName(addr string) string { return strings.ToLower(addr) }

// keyPair returns the cached pair for name, loading it on first use. A
// missing pair is not cached, so a key installed later is found without a
// reload.
func (p *Policy) keyPair(name string) (*certs.KeyPair, error) {
	n, ok := keyName(name)
	if !ok {
		return nil, fmt.Errorf("smimepolicy: key %q: %w", name, ErrNoKey)
	}
	p.mu.RLock()
	kp := p.keys[n]
	p.mu.RUnlock()
	if kp != nil {
		return kp, nil
	}
	kp, err := p.load(n)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if cur := p.keys[n]; cur != nil {
		kp = cur
	} else {
		p.keys[n] = kp
	}
	p.mu.Unlock()
	return kp, nil
}

func (p *Policy) load(name string) (*certs.KeyPair, error) {
	base := filepath.Join(p.cfg.KeysDir, name)
	kp, err := certs.LoadKeyPair(base+".crt", base+".key")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("smimepolicy: key %s: %w", name, ErrNoKey)
	}
	if err != nil {
		return nil, fmt.Errorf("smimepolicy: key %s: %w", name, err)
	}
	return kp, nil
}

// Trust is the certs.Trust in use: Config.Trust, or what the last
// successful Reload loaded.
func (p *Policy) Trust() *certs.Trust { return p.trust.Load() }

// Reload reads the trust anchors, organisation CAs and CRLs again
// (Config.LoadTrust) and every cached key pair (call it on SIGHUP). A
// Trust that does not load leaves the old one in use, so a CRL half
// downloaded cannot turn revocation checking off; a pair that no longer
// loads is dropped from the cache if its files are gone, and kept otherwise
// (a half-written renewal must not stop mail). Each problem is in the
// joined error.
func (p *Policy) Reload() error {
	var problems []error
	if p.cfg.LoadTrust != nil {
		t, err := p.cfg.LoadTrust()
		switch {
		case err != nil:
			problems = append(problems, fmt.Errorf("smimepolicy: reload trust: %w (keeping the trust loaded before)", err))
		case t == nil || t.Roots == nil:
			problems = append(problems, errors.New("smimepolicy: reload trust: no S/MIME trust anchors (keeping the trust loaded before)"))
		default:
			p.trust.Store(t)
			crls := 0
			if t.CRLs != nil {
				crls = t.CRLs.Len()
			}
			p.log.Info("S/MIME trust reloaded", "crls", crls)
		}
	}
	p.mu.RLock()
	names := make([]string, 0, len(p.keys))
	for n := range p.keys {
		names = append(names, n)
	}
	p.mu.RUnlock()
	for _, n := range names {
		kp, err := p.load(n)
		p.mu.Lock()
		switch {
		case err == nil:
			p.keys[n] = kp
		case errors.Is(err, ErrNoKey):
			delete(p.keys, n)
			problems = append(problems, err)
		default:
			problems = append(problems, fmt.Errorf("%w (keeping the pair loaded before)", err))
		}
		p.mu.Unlock()
	}
	if len(problems) > 0 {
		p.log.Error("S/MIME key reload", "err", errors.Join(problems...))
	} else {
		p.log.Info("S/MIME keys reloaded", "pairs", len(names))
	}
	return errors.Join(problems...)
}

// record writes an audit event; a failure is logged, never fatal to the
// delivery (the relay audits its own outcome too).
func (p *Policy) record(ev audit.Event) {
	if p.cfg.Audit == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = p.cfg.Now()
	}
	if ev.Actor == "" {
		ev.Actor = "system"
	}
	if err := p.cfg.Audit.Record(ev); err != nil {
		p.log.Error("audit record failed", "msgid", ev.QueueID, "action", ev.Action, "err", err)
	}
}
