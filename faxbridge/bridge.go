package faxbridge

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nhsrelay/audit"
	"nhsrelay/directory"
	"nhsrelay/faxbridge/faxtiff"
	"nhsrelay/relay"
	"nhsrelay/relay/spool"
)

// Directory is what the bridge asks the directory (*directory.Directory
// has it): who owns a fax number, may it receive now, and its
// organisation's name.
type Directory interface {
	ByFax(ctx context.Context, number string) (directory.Endpoint, error)
	Usable(e directory.Endpoint) (ok bool, reason string)
	Organisation(ctx context.Context, ods string) (directory.Organisation, error)
	Endpoints(ctx context.Context, f directory.Filter) []directory.Endpoint
}

// Queue takes a message durably (*relay.Relay has it).
type Queue interface {
	Submit(ctx context.Context, env relay.Envelope, body io.Reader) (string, error)
}

// Config configures a Bridge.
type Config struct {
	Directory Directory
	Queue     Queue
	// Dir holds the bridge's state (faxbridge.db) and the encrypted
	// dead-letter spool (deadletter/).
	Dir string
	// SpoolKey encrypts dead letters at rest (relay/spool's key).
	SpoolKey []byte
	// From is the sender of fax messages ("fax-bridge@relay.nhs.example").
	From string
	// Account is the directory account fax messages are submitted as:
	// its organisation signs them towards remote endpoints, and a hosted
	// mailbox sees them as submitted by it (relay/smimepolicy). Empty:
	// submitted without an account (signed with the relay's own
	// organisation; a hosted mailbox then quarantines them).
	Account string
	// DomainMailbox is the local part used when the endpoint that owns a
	// number is a whole domain (default "fax").
	DomainMailbox string
	// DedupeWindow is how long a delivered page is remembered to spot a
	// resend (default 7 days; negative: never treat a fax as a repeat).
	DedupeWindow time.Duration
	Limits       faxtiff.Limits
	Logger       *slog.Logger
	Audit        audit.Recorder        // nil: no audit events
	Metrics      prometheus.Registerer // nil: not registered
	Now          func() time.Time
}

// Bridge receives faxes. It is safe for concurrent use.
type Bridge struct {
	cfg   Config
	state *state
	dead  *spool.Spool
	log   *slog.Logger
	m     *metrics
	mu    sync.Mutex // one fax at a time through dedupe and record
}

// New opens the bridge's state in cfg.Dir.
func New(cfg Config) (*Bridge, error) {
	if cfg.Directory == nil || cfg.Queue == nil {
		return nil, errors.New("faxbridge: Config needs Directory and Queue")
	}
	if _, err := directory.NormaliseAddress(cfg.From); err != nil || !strings.Contains(cfg.From, "@") {
		return nil, fmt.Errorf("faxbridge: from %q: want the mailbox fax messages come from", cfg.From)
	}
	if cfg.DomainMailbox == "" {
		cfg.DomainMailbox = "fax"
	}
	if cfg.DedupeWindow == 0 {
		cfg.DedupeWindow = 7 * 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	st, err := openState(filepath.Join(cfg.Dir, "faxbridge.db"))
	if err != nil {
		return nil, err
	}
	dead, err := spool.Open(filepath.Join(cfg.Dir, "deadletter"), cfg.SpoolKey)
	if err != nil {
		st.close()
		return nil, fmt.Errorf("faxbridge: dead-letter store: %w", err)
	}
	b := &Bridge{cfg: cfg, state: st, dead: dead, log: cfg.Logger}
	if b.m, err = newMetrics(cfg.Metrics); err != nil {
		st.close()
		return nil, err
	}
	if n, err := b.deadCount(); err == nil {
		b.m.deadLetters.Set(float64(n))
	}
	return b, nil
}

// Close closes the state file.
func (b *Bridge) Close() error { return b.state.close() }

// Inbound is one received fax as an intake hands it over.
type Inbound struct {
	// Ref, if set, is the fax's reference, chosen by an intake that may
	// hand the same fax over again after a crash: Receive is idempotent
	// by Ref (NewRef makes one).
	Ref        string
	Source     string // "t37", "hylafax", "spool", "http"
	Called     string // the number dialled (DID), any common format
	Calling    string // caller ID
	CallerName string
	CSI        string // sender's fax ID if the intake knows it (else from the TIFF)
	Received   time.Time
	Data       []byte // TIFF (or PDF from a scanner); empty for a failed reception
	// PDF marks Data as a PDF that is passed on as is.
	PDF     bool
	Quality string // reception quality as the fax server reports it
	// Failed is the fax server's reason for a reception that failed, when
	// there is no image.
	Failed string
	// Stored, if set, is called as soon as the fax is durably somewhere
	// (queued, dead letter, or recorded as a duplicate or failure), before
	// anything else: an intake moves its copy out of the way there, so a
	// crash right after leaves no window for receiving it twice.
	Stored func(Outcome)
}

func (in Inbound) stored(o Outcome) Outcome {
	if in.Stored != nil {
		in.Stored(o)
	}
	return o
}

// Outcome says what became of a fax.
type Outcome struct {
	Ref      string
	Outcome  string // one of the Outcome constants
	QueueID  string // the relay's message ID when delivered
	Pages    int
	Reason   string // for a dead letter or failed reception
	RepeatOf string // for a duplicate: the earlier fax
}

// NewRef returns a fresh fax reference ("FX-20261208-1a2b3c4d5e").
func (b *Bridge) NewRef() string {
	var r [5]byte
	rand.Read(r[:])
	return "FX-" + b.cfg.Now().UTC().Format("20060102") + "-" + hex.EncodeToString(r[:])
}

// Receive takes one fax: reads it, routes it by the number dialled and
// submits it to the relay, or keeps it as a dead letter with the reason.
// An error means nothing was stored: the intake must keep its copy and
// say so (4xx, exit status, 503).
func (b *Bridge) Receive(ctx context.Context, in Inbound) (Outcome, error) {
	if in.Received.IsZero() {
		in.Received = b.cfg.Now()
	}
	ref := in.Ref
	if ref == "" {
		ref = b.NewRef()
	} else if !validRef(ref) {
		return Outcome{}, fmt.Errorf("faxbridge: reference %q: letters, digits and - only", oneLine(ref))
	}
	return b.receive(ctx, in, ref, "", false)
}

func validRef(ref string) bool {
	if ref == "" || len(ref) > 64 {
		return false
	}
	for _, c := range ref {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// receive is Receive with the reference given and, for a re-route, the
// endpoint address an administrator chose ("": by the number again).
func (b *Bridge) receive(ctx context.Context, in Inbound, ref, to string, reroute bool) (Outcome, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !reroute { // a re-route is the administrator's act
		ctx = audit.WithActor(ctx, "fax:"+in.Source)
	}
	if !reroute {
		// Handed over again after a crash: what was done stands.
		if done, ok, err := b.state.find(ref); err != nil {
			return Outcome{}, fmt.Errorf("faxbridge: %w", err)
		} else if ok {
			out := Outcome{Ref: ref, Outcome: done.Outcome, QueueID: done.QueueID, Pages: done.Pages,
				Reason: done.Reason, RepeatOf: done.RepeatOf}
			return in.stored(out), nil
		}
	}
	rec := Record{Ref: ref, Source: in.Source, Received: in.Received, Calling: in.Calling, CSI: in.CSI}
	if n, err := directory.NormaliseFax(in.Called); err == nil {
		rec.Called = n
	} else {
		rec.Called = strings.TrimSpace(in.Called)
	}
	if len(in.Data) == 0 {
		rec.Outcome, rec.Reason = OutcomeFailed, "the fax server reports a failed reception"
		if in.Failed != "" {
			rec.Reason += ": " + oneLine(in.Failed)
		}
		if err := b.state.record(rec); err != nil {
			return Outcome{}, fmt.Errorf("faxbridge: record failed reception: %w", err)
		}
		in.stored(Outcome{Ref: ref, Outcome: OutcomeFailed})
		b.m.received.WithLabelValues(in.Source, OutcomeFailed).Inc()
		b.log.Warn("fax reception failed", "ref", ref, "source", in.Source, "called", rec.Called, "reason", rec.Reason)
		b.record(ctx, audit.Event{Action: "fax.failed", QueueID: ref, Outcome: "failed", Detail: rec.Reason})
		return Outcome{Ref: ref, Outcome: OutcomeFailed, Reason: rec.Reason}, nil
	}

	fax, err := b.read(in)
	if err != nil {
		return b.deadLetter(ctx, in, rec, err.Error())
	}
	if rec.CSI == "" {
		rec.CSI = fax.csi
	}
	rec.Pages, rec.PageHashes = fax.pages, fax.hashes

	ep, addr, why := b.route(ctx, rec.Called, to)
	if why != "" {
		return b.deadLetter(ctx, in, rec, why)
	}
	rec.Endpoint, rec.ODS = ep.Address, ep.ODS

	repeats, full, err := b.repeats(rec)
	if err != nil {
		return Outcome{}, err
	}
	if full != "" {
		rec.Outcome, rec.RepeatOf = OutcomeDuplicate, full
		if err := b.state.record(rec); err != nil {
			return Outcome{}, fmt.Errorf("faxbridge: record duplicate: %w", err)
		}
		in.stored(Outcome{Ref: ref, Outcome: OutcomeDuplicate})
		b.m.received.WithLabelValues(in.Source, OutcomeDuplicate).Inc()
		b.log.Info("fax is a complete repeat, not delivered again", "ref", ref, "repeat_of", full, "endpoint", ep.Address)
		b.record(ctx, audit.Event{Action: "fax.duplicate", QueueID: ref, Endpoint: ep.Address, Outcome: "ok",
			Detail: "every page repeats fax " + full + ", already delivered"})
		return Outcome{Ref: ref, Outcome: OutcomeDuplicate, Pages: rec.Pages, RepeatOf: full}, nil
	}

	msg, err := b.message(ctx, in, rec, fax, ep, addr, repeats)
	if err != nil {
		return b.deadLetter(ctx, in, rec, "the PDF could not be made: "+err.Error())
	}
	// The reference is the relay's queue ID: a fax handed over again
	// after a crash is not queued or delivered twice (relay.Envelope.ID).
	env := relay.Envelope{From: b.cfg.From, Recipients: []string{addr}, Account: b.cfg.Account, ID: ref}
	qid, err := b.cfg.Queue.Submit(ctx, env, bytes.NewReader(msg))
	if err != nil {
		b.m.received.WithLabelValues(in.Source, "error").Inc()
		return Outcome{}, fmt.Errorf("faxbridge: submit fax %s: %w", ref, err)
	}
	rec.Outcome, rec.QueueID = OutcomeDelivered, qid
	if reroute {
		rec.Outcome = OutcomeRerouted
	}
	in.stored(Outcome{Ref: ref, Outcome: rec.Outcome, QueueID: qid})
	if err := b.state.record(rec); err != nil {
		// The message is queued: losing the record costs a report line
		// and a resend check, never the fax.
		b.log.Error("fax queued but not recorded", "ref", ref, "msgid", qid, "err", err)
	}
	b.m.received.WithLabelValues(in.Source, rec.Outcome).Inc()
	b.m.pages.Add(float64(rec.Pages))
	b.log.Info("fax queued", "ref", ref, "msgid", qid, "source", in.Source, "called", rec.Called,
		"endpoint", ep.Address, "pages", rec.Pages, "repeats", len(repeats))
	b.record(ctx, audit.Event{Action: "fax.received", QueueID: qid, Endpoint: ep.Address, Outcome: "ok",
		Detail: fmt.Sprintf("fax %s from %s, %d pages, dialled %s", ref, orDash(sender(rec.Calling, rec.CSI)), rec.Pages, rec.Called)})
	return Outcome{Ref: ref, Outcome: rec.Outcome, QueueID: qid, Pages: rec.Pages}, nil
}

// route finds the endpoint for a called number (or the address an
// administrator chose); why says in words why there is none.
func (b *Bridge) route(ctx context.Context, called, to string) (ep directory.Endpoint, addr, why string) {
	var err error
	if to != "" {
		eps := b.cfg.Directory.Endpoints(ctx, directory.Filter{})
		for _, e := range eps {
			if strings.EqualFold(e.Address, to) || strings.EqualFold(e.ID, to) {
				ep = e
			}
		}
		if ep.ID == "" {
			return ep, "", fmt.Sprintf("no endpoint %s in the directory", to)
		}
	} else {
		if _, nerr := directory.NormaliseFax(called); nerr != nil {
			return ep, "", fmt.Sprintf("the number dialled (%q) is not usable: %v", oneLine(called), nerr)
		}
		ep, err = b.cfg.Directory.ByFax(ctx, called)
		if errors.Is(err, directory.ErrNotFound) {
			return ep, "", "no endpoint in the directory owns fax number " + called
		}
		if err != nil {
			return ep, "", "directory lookup failed: " + err.Error()
		}
	}
	if ok, reason := b.cfg.Directory.Usable(ep); !ok {
		return ep, "", fmt.Sprintf("endpoint %s owns %s but cannot receive clinical mail: %s", ep.Address, orDash(called), reason)
	}
	addr = ep.Address
	if !strings.Contains(addr, "@") {
		addr = b.cfg.DomainMailbox + "@" + addr
	}
	return ep, addr, ""
}

// repeats compares the fax's pages with those delivered to the same number
// within the window: notes for the cover page, and full = the earlier
// fax's ref when every page repeats one earlier fax.
func (b *Bridge) repeats(rec Record) (notes []string, full string, err error) {
	if b.cfg.DedupeWindow < 0 {
		return nil, "", nil
	}
	seen, err := b.state.seen(rec.Called, rec.PageHashes, b.cfg.Now().Add(-b.cfg.DedupeWindow))
	if err != nil {
		return nil, "", fmt.Errorf("faxbridge: dedupe: %w", err)
	}
	byRef := map[string][]string{}
	var order []string
	all := len(seen) > 0
	for i, s := range seen {
		if s.Ref == "" {
			all = false
			continue
		}
		if _, ok := byRef[s.Ref]; !ok {
			order = append(order, s.Ref)
		}
		byRef[s.Ref] = append(byRef[s.Ref], fmt.Sprintf("page %d (its page %d)", i+1, s.Page))
	}
	if all && len(order) == 1 {
		return nil, order[0], nil
	}
	for _, ref := range order {
		notes = append(notes, fmt.Sprintf("Already received in fax %s: %s. Every other page is new or differs.",
			ref, strings.Join(byRef[ref], ", ")))
	}
	return notes, "", nil
}

func (b *Bridge) record(ctx context.Context, ev audit.Event) {
	if b.cfg.Audit == nil {
		return
	}
	ev.Time = b.cfg.Now()
	if ev.Actor == "" {
		ev.Actor = audit.ActorFrom(ctx)
	}
	if err := b.cfg.Audit.Record(ev); err != nil {
		b.log.Error("audit record failed", "action", ev.Action, "err", err)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps s to one line of at most 200 characters, for logs,
// reasons and headers.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.TrimSpace(s)
}
