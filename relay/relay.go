package relay

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nhsrelay/audit"
	"nhsrelay/directory"
	"nhsrelay/relay/queue"
	"nhsrelay/relay/spool"
)

// ErrHold, wrapped by a Sealer's error, means the recipients cannot be sent
// to safely (no valid certificate): they are Held and the sender is told in
// a DSN carrying the error's words.
var ErrHold = errors.New("relay: message held")

// ErrBadKind means Submit was given an unknown Kind, or notice mail
// marked System or Inbound.
var ErrBadKind = errors.New("relay: unknown message kind, or notice mail marked system or inbound")

// ErrNoRecipients means Submit was given an envelope without recipients.
var ErrNoRecipients = errors.New("relay: no recipients")

// Directory is what relay asks of the directory. *directory.Directory
// satisfies it.
//
// CheckRecipient is the policy, asked again at every delivery attempt
// because an endpoint may be suspended, retired or redirected after the
// intake accepted the message: it returns the endpoint to deliver to (the
// target of an administrator's redirect), an error wrapping
// directory.ErrNotFound, or a *directory.NotVerifiedError saying why not.
//
// Lookup returns the endpoint an address names in any status, with no
// redirect; the relay uses it only for its own System mail (verification
// challenges go to endpoints that are not verified yet).
//
// A Directory that also has Resolve (resolver; *directory.Directory does)
// is asked that instead of CheckRecipient, so that a redirect followed is
// audited (endpoint.redirect_followed).
type Directory interface {
	CheckRecipient(ctx context.Context, addr string) (directory.Endpoint, error)
	Lookup(ctx context.Context, addr string) (directory.Endpoint, error)
}

// Sealer protects a message for its recipients before it leaves (S/MIME,
// issue 5). It reads body and writes what is sent to w. An error wrapping
// ErrHold holds the recipients; any other error defers them.
type Sealer interface {
	Seal(ctx context.Context, m queue.Message, rcpts []directory.Endpoint, body io.Reader, w io.Writer) error
}

// Config is what New needs. Zero durations and limits take the defaults
// named beside them.
type Config struct {
	Hostname string // our name in EHLO, Reporting-MTA and DSN addresses
	SpoolDir string
	SpoolKey []byte
	// Bodies, if set, keeps message bodies instead of a spool folder at
	// SpoolDir: the Redis body store of a cluster (spool.NewRedis).
	Bodies spool.Bodies
	// Leases, if set (cluster mode), makes each attempt first take the
	// message's lease, so that one node at a time delivers it; see Rescan.
	Leases    queue.Leaser
	Store     queue.Store
	Directory Directory
	// MaildirRoot holds hosted endpoints' mailboxes, one per endpoint
	// named by the endpoint's address in lower case (a domain endpoint's
	// is named by its domain): MaildirRoot/<endpoint address>/{tmp,new,cur}.
	MaildirRoot string
	Now         func() time.Time // nil → time.Now; tests advance a fake clock and call Kick
	Logger      *slog.Logger
	Audit       audit.Recorder        // nil → no audit events
	Metrics     prometheus.Registerer // nil → no metrics
	RootCAs     *x509.CertPool        // nil → system roots
	// ExtraRootCAs returns CAs trusted for one next-hop host's TLS on top
	// of RootCAs (a federation peer's CA for its MX only). nil → none.
	ExtraRootCAs func(host string) []*x509.Certificate

	HopConcurrency int           // deliveries at once per next hop, default 10
	Concurrency    int           // messages in delivery at once, default 100
	RetryMin       time.Duration // first retry delay, default 1m
	RetryMax       time.Duration // longest retry delay, default 1h
	DelayWarnAfter time.Duration // delay DSN once after this, default 4h
	GiveUpAfter    time.Duration // failure DSN after this, default 5 days
	IdleTimeout    time.Duration // idle SMTP connections close after this, default 30s
	AttemptTimeout time.Duration // one delivery attempt to one hop, default 10m
	ResetTimeout   time.Duration // RSET that checks a pooled connection before reuse, default 10s

	Dial     func(ctx context.Context, network, addr string) (net.Conn, error) // nil → net.Dialer
	LookupMX func(ctx context.Context, domain string) ([]*net.MX, error)       // nil → net.DefaultResolver
	Sealer   Sealer                                                            // nil → sent unchanged
	Opener   Opener                                                            // nil → hosted mail delivered as spooled (sealed if a Sealer is set)

	// Notice mail (KindNotice); see notice.go.
	NoticeSigner   NoticeSigner   // DKIM; nil → notice mail is held back, never sent unsigned
	NoticeObserver NoticeObserver // told each notice recipient's outcome; nil → logged only
	MTASTS         MTASTS         // RFC 8461 policy lookup; nil → no domain's policy is looked up
	// NoticeRatePerDomain is how many notice messages per minute go to one
	// destination domain (default 600); NoticeBurst how many may go at
	// once before the rate applies (default 50).
	NoticeRatePerDomain int
	NoticeBurst         int
}

// Defaults of the Config's limits (Postfix's names in brackets where it
// has one).
const (
	DefaultHopConcurrency = 10                 // [default_destination_concurrency_limit 20]
	DefaultConcurrency    = 100                //
	DefaultRetryMin       = time.Minute        // [minimal_backoff_time 300s]
	DefaultRetryMax       = time.Hour          // [maximal_backoff_time 4000s]
	DefaultDelayWarnAfter = 4 * time.Hour      // [delay_warning_time, off by default]
	DefaultGiveUpAfter    = 5 * 24 * time.Hour // [maximal_queue_lifetime 5d]
	DefaultIdleTimeout    = 30 * time.Second   //
	DefaultAttemptTimeout = 10 * time.Minute   //
	DefaultResetTimeout   = 10 * time.Second   //
	// Notice mail to one destination domain, per minute and at once.
	DefaultNoticeRatePerDomain = 600
	DefaultNoticeBurst         = 50
)

// ValidateSettings reports every problem with c's settings alone (not the
// spool, store, directory and other parts a running server passes in),
// each naming its field. New runs it; `nhsrelay check-config` runs it on
// the config file's values, so the two can never disagree.
func (c Config) ValidateSettings() error {
	var errs []error
	if c.Hostname == "" {
		errs = append(errs, errors.New("relay: config: Hostname is empty"))
	}
	for name, v := range map[string]int{"HopConcurrency": c.HopConcurrency, "Concurrency": c.Concurrency} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("relay: config: %s %d is negative", name, v))
		}
	}
	c.applyDefaults()
	if c.RetryMax < c.RetryMin {
		errs = append(errs, fmt.Errorf("relay: config: RetryMax %v is less than RetryMin %v", c.RetryMax, c.RetryMin))
	}
	if c.GiveUpAfter <= c.DelayWarnAfter {
		errs = append(errs, fmt.Errorf("relay: config: GiveUpAfter %v is not longer than DelayWarnAfter %v", c.GiveUpAfter, c.DelayWarnAfter))
	}
	return errors.Join(errs...)
}

// applyDefaults fills the zero (or negative) limits.
func (c *Config) applyDefaults() {
	setDefault(&c.HopConcurrency, DefaultHopConcurrency)
	setDefault(&c.Concurrency, DefaultConcurrency)
	setDefault(&c.RetryMin, DefaultRetryMin)
	setDefault(&c.RetryMax, DefaultRetryMax)
	setDefault(&c.DelayWarnAfter, DefaultDelayWarnAfter)
	setDefault(&c.GiveUpAfter, DefaultGiveUpAfter)
	setDefault(&c.IdleTimeout, DefaultIdleTimeout)
	setDefault(&c.AttemptTimeout, DefaultAttemptTimeout)
	setDefault(&c.ResetTimeout, DefaultResetTimeout)
	setDefault(&c.NoticeRatePerDomain, DefaultNoticeRatePerDomain)
	setDefault(&c.NoticeBurst, DefaultNoticeBurst)
}

func (c *Config) defaults() error {
	if err := c.ValidateSettings(); err != nil {
		return err
	}
	if c.SpoolDir == "" && c.Bodies == nil {
		return errors.New("relay: config: SpoolDir is empty")
	}
	if c.Store == nil {
		return errors.New("relay: config: Store is nil")
	}
	if c.Directory == nil {
		return errors.New("relay: config: Directory is nil")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.applyDefaults()
	if c.Dial == nil {
		d := &net.Dialer{Timeout: 30 * time.Second}
		c.Dial = d.DialContext
	}
	if c.LookupMX == nil {
		c.LookupMX = net.DefaultResolver.LookupMX
	}
	return nil
}

func setDefault[T int | time.Duration](p *T, v T) {
	if *p <= 0 {
		*p = v
	}
}

// Relay is the durable queue and its delivery workers.
type Relay struct {
	cfg     Config
	spool   spool.Bodies
	bufs    *bufs
	store   queue.Store
	log     *slog.Logger
	metrics *metrics

	kick  chan struct{}
	slots chan struct{} // Concurrency

	mu      sync.Mutex
	pending map[string]*entry // messages with recipients still Queued or Held
	due     dueHeap           // the pending entries not in flight, next due first
	hops    map[string]*hop
	wg      sync.WaitGroup // attempts and marker prunes in flight

	lostAtStart  map[string]string // message ID → why its body could not be read at start-up (lost.go)
	auditMu      sync.Mutex
	auditBacklog []audit.Event // events the audit log refused, written again once it recovers (audit.go)

	nextPrune time.Time   // when Run next prunes Maildir markers; Run's goroutine only
	pruning   atomic.Bool // a marker prune is running

	noticeRate *domainLimiter // per destination domain, notice mail only
}

// New opens the spool, reconciles it with the queue store after a crash
// and loads the queued work. Run starts delivery.
func New(cfg Config) (*Relay, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	// Bodies up to one chunk share segment files and their fdatasyncs
	// (group commit); larger ones get a file each.
	sp := cfg.Bodies
	if sp == nil {
		folder, err := spool.OpenWith(cfg.SpoolDir, cfg.SpoolKey, spool.Options{SmallMax: spool.MaxSmall})
		if err != nil {
			return nil, fmt.Errorf("relay: open spool: %w", err)
		}
		sp = folder
	}
	r := &Relay{
		cfg:     cfg,
		spool:   sp,
		bufs:    newBufs(),
		store:   cfg.Store,
		log:     cfg.Logger,
		kick:    make(chan struct{}, 1),
		slots:   make(chan struct{}, cfg.Concurrency),
		pending: map[string]*entry{},
		hops:    map[string]*hop{},

		lostAtStart: map[string]string{},
	}
	var err error
	r.noticeRate = newDomainLimiter(cfg.NoticeRatePerDomain, cfg.NoticeBurst, cfg.Now)
	if r.metrics, err = newMetrics(cfg.Metrics, r); err != nil {
		return nil, err
	}
	if err := r.recover(context.Background()); err != nil {
		return nil, err
	}
	return r, nil
}

// recover makes spool and store agree. A spool file without a record was
// never acknowledged (the record is committed after the file, before 250):
// it is removed. A record whose body the spool did not find, or found
// damaged, is a message that cannot be delivered: it is logged at error
// level at once with what the spool found, and scheduled now, so that its
// first attempt fails it with a DSN to the sender and an alert (lost.go).
func (r *Relay) recover(ctx context.Context) error {
	ids, err := r.spool.IDs()
	if err != nil {
		return fmt.Errorf("relay: recover: list spool: %w", err)
	}
	onDisk := make(map[string]bool, len(ids))
	for _, id := range ids {
		onDisk[id] = true
	}
	msgs, err := r.store.List(ctx)
	if err != nil {
		return fmt.Errorf("relay: recover: list queue: %w", err)
	}
	damaged, unnamed := damageReasons(r.spool.Damaged())
	for _, m := range msgs {
		if !onDisk[m.ID] && !r.bodyKept(m.ID) {
			if done(m) { // finished; only its removal was cut short
				if err := r.store.Delete(ctx, m.ID); err != nil {
					return fmt.Errorf("relay: recover: drop %s: %w", m.ID, err)
				}
				continue
			}
			why, ok := damaged[m.ID]
			if !ok {
				why = unnamed
			}
			r.noteLost(m, why)
			r.scheduleNow(m)
			continue
		}
		delete(onDisk, m.ID)
		if done(m) { // crashed between the last update and the removal
			if err := r.remove(ctx, m.ID); err != nil {
				return fmt.Errorf("relay: recover: %w", err)
			}
			continue
		}
		r.schedule(m)
	}
	for id := range onDisk {
		r.log.Info("spool file without queue record removed (never acknowledged)", "msgid", id)
		if err := r.spool.Remove(id); err != nil {
			return fmt.Errorf("relay: recover: remove %s: %w", id, err)
		}
	}
	for _, d := range r.spool.Damaged() {
		if _, queued := r.lostAtStart[d.ID]; !queued && d.ID != "" {
			r.log.Info("damaged spool body without queue record ignored (never acknowledged, or already delivered)", "damage", d.String())
		}
	}
	return nil
}

// bodyKept reports whether id's body can be opened: a shared body store's
// IDs leave out young bodies (spool.Bodies.IDs), which are not lost. Only
// a body that is not there at all counts as missing.
func (r *Relay) bodyKept(id string) bool {
	f, err := r.spool.Open(id)
	if err == nil {
		f.Close()
		return true
	}
	// Damaged or missing: lost (lost.go). Anything else (Redis not
	// answering) says nothing about the body: keep the record.
	return !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, spool.ErrCorrupt) && !errors.Is(err, spool.ErrWrongKey)
}

// scheduleNow makes m due at once, whatever its recipients' next attempts.
func (r *Relay) scheduleNow(m queue.Message) {
	for i := range m.Recipients {
		m.Recipients[i].NextAttempt = time.Time{}
	}
	r.schedule(m)
}

// done reports whether every recipient is final (Delivered or Failed).
// Held recipients keep the message queued for an administrator's Retry or
// Delete.
func done(m queue.Message) bool {
	for _, rc := range m.Recipients {
		if rc.State != queue.Delivered && rc.State != queue.Failed {
			return false
		}
	}
	return true
}

// remove deletes the record, then the body: a crash in between leaves a
// body without a record, which recovery removes.
func (r *Relay) remove(ctx context.Context, id string) error {
	if err := r.store.Delete(ctx, id); err != nil {
		return fmt.Errorf("delete record %s: %w", id, err)
	}
	if err := r.spool.Remove(id); err != nil {
		return fmt.Errorf("remove body %s: %w", id, err)
	}
	r.mu.Lock()
	r.forgetLocked(id)
	r.mu.Unlock()
	return nil
}

// schedule records m's next due time in memory: the earliest NextAttempt
// of its Queued and Held recipients (a held recipient is looked at again,
// in case its certificate was renewed or its endpoint verified). A message
// with neither is forgotten.
func (r *Relay) schedule(m queue.Message) {
	var due time.Time
	found, held := false, 0
	for _, rc := range m.Recipients {
		if rc.State != queue.Queued && rc.State != queue.Held {
			continue
		}
		if rc.State == queue.Held {
			held++
		}
		if !found || rc.NextAttempt.Before(due) {
			due, found = rc.NextAttempt, true
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !found {
		r.forgetLocked(m.ID)
		return
	}
	e := r.pending[m.ID]
	if e == nil {
		e = &entry{id: m.ID, index: -1}
		r.pending[m.ID] = e
	}
	e.due, e.received, e.held = due, m.Received, held
	r.placeLocked(e)
}

var idEncoding = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

// NewID returns a unique queue ID that sorts by creation time: 13
// characters of nanoseconds since 1970 and 13 random ones, in Crockford's
// base32 (digits and capitals only, safe as a file name and in a Maildir
// key).
func NewID() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixNano()))
	if _, err := rand.Read(b[8:]); err != nil {
		panic("relay: crypto/rand failed: " + err.Error()) // never returns an error on supported platforms
	}
	// 8 bytes = 64 bits → 13 base32 characters each half, order preserved
	// because the encoding alphabet is in ascending byte order.
	return idEncoding.EncodeToString(b[:8]) + idEncoding.EncodeToString(b[8:])
}
