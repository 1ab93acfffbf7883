package directory

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"nhsrelay/audit"
)

// Mailer sends one message; cmd wires it to the relay. The directory uses it
// for verification challenges.
type Mailer interface {
	Send(ctx context.Context, from string, to []string, msg io.Reader) error
}

// Config is what Open needs. Only Store is required.
type Config struct {
	Store  Store
	Now    func() time.Time // nil: time.Now
	Logger *slog.Logger     // nil: discard
	Audit  audit.Recorder   // nil: no audit events

	Mailer        Mailer // nil: StartChallenge fails with ErrNoMailer
	ChallengeFrom string // envelope and header From of challenge mail
	ChallengeTTL  time.Duration
	// ChallengeAttempts is how many wrong codes end a challenge (default 5).
	ChallengeAttempts int

	// ReverifyAfter is how long a verification lasts (default 365 days:
	// DCB1596 accreditation is annual).
	ReverifyAfter time.Duration
	// WarnBefore is how far ahead CheckExpiry warns (default 30 days).
	WarnBefore time.Duration

	// CertCheck judges S/MIME certificates for Check and CheckExpiry as the
	// relay will (chain to the S/MIME trust anchors, emailProtection,
	// key usage and size, dates). nil: dates only (tests).
	CertCheck CertCheck
	// RequireSMIME says mail leaving this relay is always S/MIME encrypted
	// (serve sets it: the relay seals every message to a remote endpoint).
	// Then the one recipient decision (CheckRecipient, Resolve, Check,
	// Usable) refuses a remote endpoint with no usable encryption
	// certificate, unless it is an administrator's TLS-only exception.
	// Hosted endpoints never need one: their mail is delivered here. Off,
	// certificates are listed by Check but decide nothing (relay tests
	// without a Sealer).
	RequireSMIME bool

	// HashCost is the bcrypt cost for challenge codes, for passwords hashed
	// by (*Directory).HashPassword and for the stand-in hash Authenticate
	// compares unknown users against (default
	// bcrypt.DefaultCost). Tests lower it to bcrypt.MinCost.
	HashCost int

	// AuthCacheTTL is how long Authenticate remembers a successful login
	// (see authCache: successes only, keyed by an HMAC under a per-process
	// key, dropped when the account changes). 0 disables the cache; cmd
	// defaults it to DefaultAuthCacheTTL.
	AuthCacheTTL time.Duration
	// AuthCacheSize bounds the login cache (default DefaultAuthCacheSize).
	AuthCacheSize int
}

// Defaults.
const (
	DefaultReverifyAfter     = 365 * 24 * time.Hour
	DefaultWarnBefore        = 30 * 24 * time.Hour
	DefaultChallengeTTL      = 72 * time.Hour
	DefaultChallengeAttempts = 5
)

// Directory is the in-memory view of a Store, safe for concurrent use.
// Reads take a read lock on memory only; writes are serialised, go to the
// Store first and change memory only once the Store has them.
type Directory struct {
	cfg   Config
	log   *slog.Logger
	store Store

	wmu sync.Mutex // serialises writes (read-modify-write of records)

	mu    sync.RWMutex
	rev   uint64
	orgs  map[string]Organisation // by ODS code
	eps   map[string]Endpoint     // by ID
	accts map[string]Account      // by lower-case username
	chals map[string]Challenge    // by endpoint ID
	// Indexes over eps: lower-case address → IDs, E.164 fax → IDs.
	byAddr map[string][]string
	byFax  map[string][]string

	parsed certCache // DER → parsed certificate, for the recipient decision

	dummyOnce sync.Once
	dummyHash []byte // compared against when an account is unknown

	logins  *authCache                    // nil: disabled
	compare func(hash, pass []byte) error // bcrypt.CompareHashAndPassword; tests count calls
}

// Validate reports every problem with c, each naming its field: the
// settings (ValidateSettings) and the parts Open needs.
func (c Config) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("directory: Store: not set"))
	}
	if c.Mailer != nil && c.ChallengeFrom == "" {
		errs = append(errs, fmt.Errorf("directory: ChallengeFrom: %q must be a mailbox when a Mailer is set", c.ChallengeFrom))
	}
	return errors.Join(append(errs, c.ValidateSettings())...)
}

// ValidateSettings reports every problem with c's settings alone (not the
// Store, Mailer and other parts a running server passes in), each naming
// its field. Open runs it; `nhsrelay check-config` runs it on the config
// file's values, so the two can never disagree.
func (c Config) ValidateSettings() error {
	var errs []error
	if c.ChallengeFrom != "" {
		if a, err := NormaliseAddress(c.ChallengeFrom); err != nil || !strings.Contains(a, "@") {
			errs = append(errs, fmt.Errorf("directory: ChallengeFrom: %q must be a mailbox", c.ChallengeFrom))
		}
	}
	for name, v := range map[string]time.Duration{"ReverifyAfter": c.ReverifyAfter, "WarnBefore": c.WarnBefore, "ChallengeTTL": c.ChallengeTTL} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("directory: %s: %s is negative", name, v))
		}
	}
	if c.AuthCacheTTL < 0 {
		errs = append(errs, fmt.Errorf("directory: AuthCacheTTL: %s is negative (0 disables the cache)", c.AuthCacheTTL))
	}
	if c.AuthCacheSize < 0 {
		errs = append(errs, fmt.Errorf("directory: AuthCacheSize: %d is negative", c.AuthCacheSize))
	}
	if c.ChallengeAttempts < 0 {
		errs = append(errs, fmt.Errorf("directory: ChallengeAttempts: %d is negative", c.ChallengeAttempts))
	}
	if c.HashCost != 0 && (c.HashCost < bcrypt.MinCost || c.HashCost > bcrypt.MaxCost) {
		errs = append(errs, fmt.Errorf("directory: HashCost: %d is outside bcrypt's %d to %d", c.HashCost, bcrypt.MinCost, bcrypt.MaxCost))
	}
	return errors.Join(errs...)
}

// Open loads everything from cfg.Store into memory.
func Open(ctx context.Context, cfg Config) (*Directory, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("directory: open: %w", err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ReverifyAfter <= 0 {
		cfg.ReverifyAfter = DefaultReverifyAfter
	}
	if cfg.WarnBefore <= 0 {
		cfg.WarnBefore = DefaultWarnBefore
	}
	if cfg.ChallengeTTL <= 0 {
		cfg.ChallengeTTL = DefaultChallengeTTL
	}
	if cfg.ChallengeAttempts <= 0 {
		cfg.ChallengeAttempts = DefaultChallengeAttempts
	}
	if cfg.Mailer != nil {
		cfg.ChallengeFrom, _ = NormaliseAddress(cfg.ChallengeFrom) // checked by Validate
	}
	if cfg.HashCost == 0 {
		cfg.HashCost = bcrypt.DefaultCost
	}
	d := &Directory{cfg: cfg, log: cfg.Logger, store: cfg.Store,
		logins: newAuthCache(cfg.AuthCacheTTL, cfg.AuthCacheSize), compare: bcrypt.CompareHashAndPassword}
	if err := d.load(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// Stats are counts for metrics (gauges) and status pages.
type Stats struct {
	Revision      uint64
	Organisations int
	Endpoints     map[EndpointStatus]int
	Accounts      int
	Challenges    int // outstanding
}

// Stats returns the current counts.
func (d *Directory) Stats() Stats {
	d.mu.RLock()
	defer d.mu.RUnlock()
	s := Stats{Revision: d.rev, Organisations: len(d.orgs), Endpoints: map[EndpointStatus]int{},
		Accounts: len(d.accts), Challenges: len(d.chals)}
	for _, e := range d.eps {
		s.Endpoints[e.Status]++
	}
	return s
}

// Revision is the store revision the directory's memory is at: it changes
// with every write (and every Refresh that loads another node's), so a
// reader can keep something derived from it while it stays the same.
func (d *Directory) Revision() uint64 {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.rev
}

// Refresh reloads from the Store if another writer (another node in a
// cluster) has changed it since the last load. cmd calls it periodically.
func (d *Directory) Refresh(ctx context.Context) error {
	rev, err := d.store.Revision(ctx)
	if err != nil {
		return fmt.Errorf("directory: refresh: %w", err)
	}
	d.mu.RLock()
	same := rev == d.rev
	d.mu.RUnlock()
	if same {
		return nil
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	return d.load(ctx)
}

func (d *Directory) load(ctx context.Context) error {
	snap, err := d.store.Load(ctx)
	if err != nil {
		return fmt.Errorf("directory: load: %w", err)
	}
	orgs := make(map[string]Organisation, len(snap.Organisations))
	for _, o := range snap.Organisations {
		orgs[o.ODS] = o
	}
	eps := make(map[string]Endpoint, len(snap.Endpoints))
	for _, e := range snap.Endpoints {
		eps[e.ID] = e
	}
	accts := make(map[string]Account, len(snap.Accounts))
	for _, a := range snap.Accounts {
		accts[strings.ToLower(a.Username)] = a
	}
	chals := make(map[string]Challenge, len(snap.Challenges))
	for _, c := range snap.Challenges {
		chals[c.EndpointID] = c
	}
	d.mu.Lock()
	d.rev, d.orgs, d.eps, d.accts, d.chals = snap.Revision, orgs, eps, accts, chals
	d.byAddr, d.byFax = map[string][]string{}, map[string][]string{}
	for _, e := range eps {
		d.index(e)
	}
	d.mu.Unlock()
	// Another node may have changed any account: forget every cached login.
	d.logins.clear()
	d.log.Info("directory loaded", "organisations", len(orgs), "endpoints", len(eps),
		"accounts", len(accts), "revision", snap.Revision)
	return nil
}

// commit writes b to the Store and then to memory. The caller holds wmu.
func (d *Directory) commit(ctx context.Context, op string, b Batch) error {
	if b.Empty() {
		return nil
	}
	// No change without its audit record (auditgate.go): every write, an
	// administrator's, an import's, an expiry run's or a peer sync's, comes
	// through here, so the gate is here and not at each caller.
	if err := d.auditGate(); err != nil {
		return err
	}
	if err := d.store.Apply(ctx, b); err != nil {
		return fmt.Errorf("directory: %s: %w", op, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rev++
	for _, o := range b.Organisations {
		d.orgs[o.ODS] = o
	}
	for _, e := range b.Endpoints {
		if old, ok := d.eps[e.ID]; ok {
			d.unindex(old)
		}
		d.eps[e.ID] = e
		d.index(e)
	}
	for _, a := range b.Accounts {
		u := strings.ToLower(a.Username)
		d.accts[u] = a
		d.logins.drop(u) // a new password or a disable takes effect at once
	}
	for _, c := range b.Challenges {
		d.chals[c.EndpointID] = c
	}
	for _, id := range b.DeleteChallenges {
		delete(d.chals, id)
	}
	for _, u := range b.DeleteAccounts {
		u = strings.ToLower(u)
		delete(d.accts, u)
		d.logins.drop(u)
	}
	return nil
}

// index adds e to byAddr and byFax. The caller holds d.mu.
func (d *Directory) index(e Endpoint) {
	a := strings.ToLower(e.Address)
	d.byAddr[a] = append(d.byAddr[a], e.ID)
	for _, f := range e.FaxNumbers {
		d.byFax[f] = append(d.byFax[f], e.ID)
	}
}

// unindex removes e from byAddr and byFax. The caller holds d.mu.
func (d *Directory) unindex(e Endpoint) {
	drop := func(m map[string][]string, k string) {
		ids := slices.DeleteFunc(m[k], func(id string) bool { return id == e.ID })
		if len(ids) == 0 {
			delete(m, k)
		} else {
			m[k] = ids
		}
	}
	drop(d.byAddr, strings.ToLower(e.Address))
	for _, f := range e.FaxNumbers {
		drop(d.byFax, f)
	}
}

// record writes an audit event. A failure to audit is logged loudly; the
// change it describes is already durable and is not undone.
func (d *Directory) record(ctx context.Context, action, endpoint, outcome, detail string) {
	if d.cfg.Audit == nil {
		return
	}
	ev := audit.Event{Time: d.cfg.Now(), Actor: audit.ActorFrom(ctx), Action: action,
		Endpoint: endpoint, Outcome: outcome, Detail: detail}
	if err := d.cfg.Audit.Record(ev); err != nil {
		d.log.Error("directory: audit record failed", "action", action, "endpoint", endpoint, "err", err)
	}
}

// dummy returns a bcrypt hash of a random password, made on first use.
func (d *Directory) dummy() []byte {
	d.dummyOnce.Do(func() {
		h, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), d.cfg.HashCost)
		if err != nil { // only for a cost out of range, which Open refuses
			panic("directory: dummy hash: " + err.Error())
		}
		d.dummyHash = h
	})
	return d.dummyHash
}

// newID returns a fresh endpoint ID ("ep-" and 16 base32 characters).
func newID() string {
	var b [10]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return "ep-" + strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
}

// day formats t as a date for people ("2024-03-31").
func day(t time.Time) string { return t.UTC().Format(time.DateOnly) }
