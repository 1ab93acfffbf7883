package notices

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// queueLetter puts notice n's current version in the print queue. A
// letter still pending is replaced (one letter per notice, the latest
// version); a cancellation of an appointment that was never printed and
// never emailed needs no paper.
func (s *Service) queueLetter(n *Notice, now time.Time, reason string) {
	if n.Appointment.Address == nil {
		n.record(now, StatusRecorded, "no letter: there is no postal address ("+reason+")")
		return
	}
	if n.Kind == KindCancelled && n.Letter != nil && n.Letter.State == LetterPending && !n.everPrinted() && n.Appointment.Email == "" {
		n.Letter.State = LetterCancelled
		n.record(now, StatusCancelled, "letter cancelled before printing: the appointment was cancelled")
		return
	}
	n.Letter = &Letter{State: LetterPending, Sequence: n.Sequence, Queued: now, Reason: reason}
	n.record(now, StatusLetterQueued, reason)
}

// everPrinted reports whether any version of n went out on paper.
func (n *Notice) everPrinted() bool {
	for _, e := range n.Timeline {
		if e.Status == StatusLetterPrinted {
			return true
		}
	}
	return false
}

// LetterView is one letter in the print queue, for GET /v1/letters.
type LetterView struct {
	Reference    string      `json:"reference"`
	Organisation string      `json:"organisation"`
	State        LetterState `json:"state"`
	Sequence     int         `json:"sequence"`
	Queued       time.Time   `json:"queued"`
	Reason       string      `json:"reason"`
	Run          string      `json:"run,omitempty"`
}

// Letters lists letters in state st ("" for all).
func (s *Service) Letters(ctx context.Context, st LetterState) ([]LetterView, error) {
	var out []LetterView
	err := s.store.Each(ctx, func(n Notice) bool {
		if l := n.Letter; l != nil && (st == "" || l.State == st) {
			out = append(out, LetterView{Reference: n.Reference, Organisation: n.Organisation, State: l.State,
				Sequence: l.Sequence, Queued: l.Queued, Reason: l.Reason, Run: l.Run})
		}
		return true
	})
	return out, err
}

// ErrLetterNotPending means a letter cannot be cancelled: there is none,
// or its print run has it already.
var ErrLetterNotPending = errors.New("notices: the letter is not waiting to be printed")

// CancelLetter takes a pending letter out of the print queue.
func (s *Service) CancelLetter(ctx context.Context, ref string) error {
	now := s.now()
	_, err := s.update(ctx, ref, func(n *Notice) error {
		if n.Letter == nil || n.Letter.State != LetterPending {
			return ErrLetterNotPending
		}
		n.Letter.State = LetterCancelled
		n.record(now, StatusRecorded, "letter cancelled by an operator before its print run")
		return nil
	})
	if err == nil {
		s.auditAdmin(ctx, "notice.letter_cancelled", "reference "+ref)
	}
	return err
}

// cutoff is the latest daily cut-off at or before now: letters queued
// before it belong to the run made now.
func (s *Service) cutoff(now time.Time) time.Time {
	l := now.In(london)
	y, m, d := l.Date()
	c := time.Date(y, m, d, 0, 0, 0, 0, london).Add(s.cfg.LetterCutoff)
	if c.After(now) {
		c = c.AddDate(0, 0, -1)
	}
	return c
}

// CreatePrintRun gathers every pending letter queued before the latest
// daily cut-off into one print run with one combined PDF. Letters queued
// after the cut-off wait for the next day's run.
func (s *Service) CreatePrintRun(ctx context.Context) (PrintRun, error) {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	now := s.now()
	cut := s.cutoff(now)
	var refs []string
	err := s.store.Each(ctx, func(n Notice) bool {
		if n.Letter != nil && n.Letter.State == LetterPending && n.Letter.Queued.Before(cut) {
			refs = append(refs, n.Reference)
		}
		return true
	})
	if err != nil {
		return PrintRun{}, err
	}
	if len(refs) == 0 {
		return PrintRun{}, fmt.Errorf("no letters queued before the cut-off %s: %w", cut.In(london).Format(time.RFC1123), ErrNotFound)
	}
	run := PrintRun{ID: "run-" + now.UTC().Format("20060102-150405") + "-" + randomText(3), Created: now, Cutoff: cut}
	var letters []letterContent
	for _, ref := range refs {
		n, err := s.update(ctx, ref, func(n *Notice) error {
			if n.Letter == nil || n.Letter.State != LetterPending {
				return errUnchanged // cancelled meanwhile
			}
			n.Letter.State, n.Letter.Run = LetterInRun, run.ID
			return nil
		})
		if err != nil {
			continue
		}
		letters = append(letters, s.letterContent(ctx, n, now))
		run.References = append(run.References, ref)
	}
	var pdf bytes.Buffer
	if err := writeLetters(&pdf, letters); err != nil {
		return PrintRun{}, err
	}
	run.PDF = pdf.Bytes()
	if err := s.store.PutRun(ctx, run); err != nil {
		return PrintRun{}, err
	}
	s.auditAdmin(ctx, "notice.print_run", fmt.Sprintf("%s: %d letters", run.ID, len(run.References)))
	return run, nil
}

// MarkPrinted records that a run's letters were printed and posted.
func (s *Service) MarkPrinted(ctx context.Context, id string) (PrintRun, error) {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	run, err := s.store.Run(ctx, id)
	if err != nil {
		return PrintRun{}, err
	}
	if !run.Printed.IsZero() {
		return run, nil
	}
	now := s.now()
	for _, ref := range run.References {
		s.update(ctx, ref, func(n *Notice) error {
			if n.Letter == nil || n.Letter.Run != id || n.Letter.State != LetterInRun {
				return errUnchanged
			}
			n.Letter.State, n.Letter.Printed = LetterPrinted, now
			n.record(now, StatusLetterPrinted, "print run "+id)
			return nil
		})
	}
	run.Printed = now
	if err := s.store.PutRun(ctx, run); err != nil {
		return PrintRun{}, err
	}
	s.auditAdmin(ctx, "notice.print_run_printed", id)
	return run, nil
}

// Runs lists print runs without their PDFs.
func (s *Service) Runs(ctx context.Context) ([]PrintRun, error) {
	rs, err := s.store.Runs(ctx)
	for i := range rs {
		rs[i].PDF = nil
	}
	slices.Reverse(rs)
	return rs, err
}

func (s *Service) auditAdmin(ctx context.Context, action, detail string) {
	if s.cfg.Audit == nil {
		return
	}
	if err := s.cfg.Audit.Record(auditEvent(ctx, s.now(), action, detail)); err != nil {
		s.log.Error("audit record failed", "action", action, "err", err)
	}
}
