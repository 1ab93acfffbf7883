package notices

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"nhsrelay/audit"
	"nhsrelay/directory"
	"nhsrelay/relay"
)

// Organisations is what notices asks of the directory: the organisation a
// notice is sent for (its name goes in the email and letter).
// *directory.Directory has it.
type Organisations interface {
	Organisation(ctx context.Context, ods string) (directory.Organisation, error)
}

// Queue is the relay: Submit returns once the message is durable.
type Queue interface {
	Submit(ctx context.Context, env relay.Envelope, body io.Reader) (string, error)
}

// OrgSettings is how one organisation sends notices.
type OrgSettings struct {
	From        string // the From: address patients see; its domain's DKIM key signs
	ReplyTo     string // optional
	Window      Window // when patient emails may go out; zero: any time
	TemplateDir string // optional overrides: email.html, email.txt, subject.txt
}

// Config is what New needs.
type Config struct {
	Store         Store
	Organisations Organisations
	Queue         Queue
	// Hostname names the bounce domain: the return path of each email is
	// bounce+<notice ID>.<sequence>@Hostname (VERP), so a DSN to it maps
	// back to its notice; mail for it arrives on the MX listener.
	Hostname    string
	DefaultFrom string                 // From: for organisations without OrgSettings.From
	Orgs        map[string]OrgSettings // by ODS code
	Now         func() time.Time       // nil → time.Now
	Logger      *slog.Logger
	Audit       audit.Recorder
	// LetterCutoff is the time of day (in Europe/London) of the daily
	// print run: letters queued after it wait for the next day's run.
	// Default 16:00.
	LetterCutoff time.Duration
	// StillSendingAfter turns an email not delivered after this into a
	// temporary-failure (GOV.UK Notify: 3 days), and queues its letter.
	StillSendingAfter time.Duration
	// Webhooks: client (nil → 10 s timeout) and how long an event is
	// retried (default 24 h).
	WebhookClient   *http.Client
	WebhookRetryFor time.Duration
	// Workers render and hand notices to the relay at once (default 4).
	Workers int
}

// Service takes notices, sends them and keeps their status.
type Service struct {
	cfg   Config
	store Store
	log   *slog.Logger
	now   func() time.Time

	credMu sync.RWMutex
	creds  map[string]Credential

	mu      sync.Mutex
	pending map[string]time.Time // reference → due, notices waiting to be dispatched
	outbox  map[string]time.Time // reference → next webhook attempt
	byID    map[string]string    // notice ID → reference
	kick    chan struct{}

	templates *templateSet
	lastSweep time.Time  // checkStillSending; Run's goroutine only
	runMu     sync.Mutex // one print run at a time
}

// New loads credentials and the work left from before a restart.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Organisations == nil || cfg.Queue == nil {
		return nil, errors.New("notices: config needs Store, Organisations and Queue")
	}
	if cfg.Hostname == "" {
		return nil, errors.New("notices: config: Hostname is empty")
	}
	if cfg.DefaultFrom == "" {
		cfg.DefaultFrom = "appointments@" + cfg.Hostname
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LetterCutoff <= 0 {
		cfg.LetterCutoff = 16 * time.Hour
	}
	if cfg.StillSendingAfter <= 0 {
		cfg.StillSendingAfter = 72 * time.Hour
	}
	if cfg.WebhookClient == nil {
		cfg.WebhookClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.WebhookRetryFor <= 0 {
		cfg.WebhookRetryFor = 24 * time.Hour
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	ts, err := loadTemplates(cfg.Orgs)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, store: cfg.Store, log: cfg.Logger, now: cfg.Now,
		pending: map[string]time.Time{}, outbox: map[string]time.Time{}, byID: map[string]string{},
		kick: make(chan struct{}, 1), templates: ts}
	if err := s.reloadCredentials(ctx); err != nil {
		return nil, err
	}
	err = s.store.Each(ctx, func(n Notice) bool {
		s.track(n)
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("notices: load: %w", err)
	}
	return s, nil
}

// track notes what a stored notice still needs: dispatch, webhooks.
func (s *Service) track(n Notice) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byID[n.ID] = n.Reference
	if n.Pending {
		s.pending[n.Reference] = n.Due
	} else {
		delete(s.pending, n.Reference)
	}
	if len(n.Outbox) > 0 {
		next := n.Outbox[0].NextAttempt
		for _, e := range n.Outbox {
			if e.NextAttempt.Before(next) {
				next = e.NextAttempt
			}
		}
		s.outbox[n.Reference] = next
	} else {
		delete(s.outbox, n.Reference)
	}
}

// Kick wakes the dispatcher.
func (s *Service) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// ErrForbidden means the credential may not act for the organisation.
var ErrForbidden = errors.New("notices: this credential is not scoped to the organisation")

// ConflictError is a reference reused for something else (409).
type ConflictError struct{ Reason string }

func (e *ConflictError) Error() string { return "notices: conflict: " + e.Reason }

// Accept takes one notice request from a sending system. created is true
// when the request made a new notice or a new version of one; false when
// it repeated one already taken (idempotency by reference). Errors: a
// *ValidationError (400), ErrForbidden (403), a *ConflictError (409), or
// ErrNotFound for a cancellation of a reference never sent (404).
func (s *Service) Accept(ctx context.Context, cred Credential, req Request) (n Notice, created bool, err error) {
	now := s.now()
	kind, appt, err := req.Validate(now)
	if err != nil {
		return Notice{}, false, err
	}
	if _, err := s.cfg.Organisations.Organisation(ctx, req.Organisation); err != nil {
		if errors.Is(err, directory.ErrNotFound) {
			return Notice{}, false, &ValidationError{Fields: []FieldError{{Field: "organisation", Problem: "no organisation with this ODS code in the directory"}}}
		}
		return Notice{}, false, fmt.Errorf("notices: organisation %s: %w", req.Organisation, err)
	}
	if !cred.Allows(req.Organisation) {
		return Notice{}, false, ErrForbidden
	}
	sum := sha256.Sum256(canonical(kind, appt))
	digest := hex.EncodeToString(sum[:])
	for range 3 { // a concurrent first post of the same reference: Create loses, Update wins
		n, created, err = s.apply(ctx, cred, req.Reference, req.Organisation, kind, appt, digest, now)
		if !errors.Is(err, ErrExists) {
			break
		}
	}
	if err != nil {
		return Notice{}, false, err
	}
	s.track(n)
	if created {
		s.auditNotice(ctx, cred, n, "notice.accepted", "ok", fmt.Sprintf("kind %s, sequence %d", n.Kind, n.Sequence))
		s.Kick()
	}
	return n, created, nil
}

var errSame = errors.New("same notice")

func (s *Service) apply(ctx context.Context, cred Credential, ref, org string, kind Kind, a Appointment, digest string, now time.Time) (Notice, bool, error) {
	_, err := s.store.Get(ctx, ref)
	if errors.Is(err, ErrNotFound) {
		if kind == KindCancelled {
			return Notice{}, false, fmt.Errorf("no notice with reference %q to cancel: %w", ref, ErrNotFound)
		}
		n := Notice{ID: randomText(10), Reference: ref, Organisation: org, Credential: cred.ID, Kind: kind,
			Appointment: a, Digest: digest, Created: now, Hooked: cred.Webhook != ""}
		s.newVersion(&n, now)
		if err := s.store.Create(ctx, n); err != nil {
			return Notice{}, false, err
		}
		return n, true, nil
	}
	if err != nil {
		return Notice{}, false, err
	}
	var out Notice
	err = s.store.Update(ctx, ref, func(n *Notice) error {
		if err := sameStory(n, org, kind, a, digest); err != nil {
			return err
		}
		n.Kind, n.Appointment, n.Digest = kind, a, digest
		n.Sequence++
		s.newVersion(n, now)
		out = *n
		return nil
	})
	if errors.Is(err, errSame) {
		cur, err := s.store.Get(ctx, ref)
		return cur, false, err
	}
	return out, err == nil, err
}

// sameStory decides whether a request may become the next version of n:
// errSame when it repeats one already taken, a *ConflictError when the
// reference is reused for another patient or organisation.
func sameStory(n *Notice, org string, kind Kind, a Appointment, digest string) error {
	switch {
	case n.Organisation != org:
		return &ConflictError{Reason: "reference already used by another organisation"}
	case slices.Contains(n.digests(), digest):
		return errSame
	case !samePatient(n.Appointment, a):
		return &ConflictError{Reason: "reference already used for a different patient"}
	case n.Kind == KindCancelled:
		return &ConflictError{Reason: "this appointment was cancelled; a new appointment needs a new reference"}
	case kind == KindNew:
		return &ConflictError{Reason: "reference already used for a different appointment; send kind \"changed\" to change it"}
	}
	return nil
}

// digests are the content digests of every version taken (a retry of an
// earlier version is still the same notice).
func (n *Notice) digests() []string {
	out := []string{n.Digest}
	for _, e := range n.Timeline {
		if d, ok := strings.CutPrefix(e.Detail, "digest "); ok && e.Status == StatusCreated {
			out = append(out, d)
		}
	}
	return out
}

// samePatient: the same name (ignoring case and spacing) and, when both
// carry one, the same NHS number.
func samePatient(a, b Appointment) bool {
	if !strings.EqualFold(a.PatientName, b.PatientName) {
		return false
	}
	return a.NHSNumber == "" || b.NHSNumber == "" || a.NHSNumber == b.NHSNumber
}

// newVersion starts the story of n's current version: created, then
// either queued for email (pending dispatch) or for a letter.
func (s *Service) newVersion(n *Notice, now time.Time) {
	n.EmailStatus = StatusCreated
	n.QueueID = ""
	n.record(now, StatusCreated, "digest "+n.Digest)
	if n.Kind == KindCancelled {
		n.record(now, StatusCancelled, "appointment cancelled")
	}
	if n.Appointment.Email != "" {
		n.Pending, n.Due = true, now
		return
	}
	n.Pending = false
	n.EmailStatus = ""
	s.queueLetter(n, now, "no email address")
}

// Get returns the notice with reference ref if cred may see it.
func (s *Service) Get(ctx context.Context, cred Credential, ref string) (Notice, error) {
	n, err := s.store.Get(ctx, ref)
	if err != nil {
		return Notice{}, err
	}
	if !cred.Allows(n.Organisation) {
		return Notice{}, fmt.Errorf("notice %q: %w", ref, ErrNotFound) // not even its existence
	}
	return n, nil
}

func (s *Service) auditNotice(ctx context.Context, cred Credential, n Notice, action, outcome, detail string) {
	if s.cfg.Audit == nil {
		return
	}
	actor := audit.ActorFrom(ctx)
	if cred.ID != "" {
		actor = "notice-credential:" + cred.ID
	}
	ev := audit.Event{Time: s.now(), Actor: actor, Action: action, QueueID: n.QueueID, Endpoint: n.Organisation,
		Outcome: outcome, Detail: "notice " + n.ID + " (reference " + n.Reference + "): " + detail}
	if err := s.cfg.Audit.Record(ev); err != nil {
		s.log.Error("audit record failed", "action", action, "notice", n.ID, "err", err)
	}
}

func auditEvent(ctx context.Context, now time.Time, action, detail string) audit.Event {
	return audit.Event{Time: now, Actor: audit.ActorFrom(ctx), Action: action, Outcome: "ok", Detail: detail}
}
