package notices

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"nhsrelay/relay"
)

// Run dispatches notices (within each organisation's sending window),
// delivers webhooks and turns emails still sending after
// StillSendingAfter into temporary failures, until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		s.dispatchDue(ctx)
		s.sendWebhooks(ctx)
		s.checkStillSending(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-s.kick:
		case <-tick.C:
		}
	}
}

// dispatchDue hands every due notice to the relay, Workers at once.
func (s *Service) dispatchDue(ctx context.Context) {
	now := s.now()
	s.mu.Lock()
	var due []string
	for ref, t := range s.pending {
		if !t.After(now) {
			due = append(due, ref)
		}
	}
	s.mu.Unlock()
	sort.Strings(due)
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(s.cfg.Workers, len(due)) {
		wg.Go(func() {
			for ref := range work {
				s.dispatch(ctx, ref)
			}
		})
	}
	for _, ref := range due {
		work <- ref
	}
	close(work)
	wg.Wait()
}

// verp is the return path of notice n's current version (RFC 5321 §4.5.5
// reverse-path; VERP: one per notice, so a bounce names its notice).
func (s *Service) verp(n Notice) string {
	return fmt.Sprintf("bounce+%s.%d@%s", n.ID, n.Sequence, s.cfg.Hostname)
}

// dispatch renders one notice and queues it with the relay. The notice
// record is updated after the relay has the message: a crash in between
// sends the email again (at least once, never lost).
func (s *Service) dispatch(ctx context.Context, ref string) {
	n, err := s.store.Get(ctx, ref)
	if err != nil || !n.Pending {
		if err != nil {
			s.log.Error("read notice to dispatch", "reference", ref, "err", err)
		}
		s.mu.Lock()
		if err != nil && !errors.Is(err, ErrNotFound) {
			// A store that failed to read is no reason to stop sending
			// the notice: keep it pending and try again in a minute.
			s.pending[ref] = s.now().Add(time.Minute)
		} else {
			delete(s.pending, ref)
		}
		s.mu.Unlock()
		return
	}
	now := s.now()
	org := s.cfg.Orgs[n.Organisation]
	if next := org.Window.Next(now); next.After(now) {
		s.update(ctx, ref, func(n *Notice) error { n.Due = next; return nil })
		return
	}
	var buf bytes.Buffer
	if err := s.render(ctx, &buf, n); err != nil {
		s.log.Error("render notice", "notice", n.ID, "err", err)
		s.update(ctx, ref, func(n *Notice) error {
			n.Pending = false
			s.emailFinal(n, now, StatusTechnicalFailure, "the email could not be made; the service desk has the details")
			return nil
		})
		return
	}
	seq := n.Sequence
	id, err := s.cfg.Queue.Submit(ctx, relay.Envelope{From: s.verp(n), Recipients: []string{n.Appointment.Email},
		Kind: relay.KindNotice, Account: "notices"}, &buf)
	if err != nil {
		s.log.Error("queue notice email; will retry", "notice", n.ID, "err", err)
		s.update(ctx, ref, func(n *Notice) error { n.Due = now.Add(time.Minute); return nil })
		return
	}
	s.update(ctx, ref, func(n *Notice) error {
		if !n.Pending || n.Sequence != seq { // changed meanwhile: the new version is dispatched too
			return nil
		}
		n.Pending, n.QueueID, n.EmailStatus = false, id, StatusSending
		n.record(now, StatusSending, "queued as "+id)
		return nil
	})
}

// update changes a stored notice and tracks what it needs next.
func (s *Service) update(ctx context.Context, ref string, fn func(*Notice) error) (Notice, error) {
	var out Notice
	err := s.store.Update(ctx, ref, func(n *Notice) error {
		if err := fn(n); err != nil {
			return err
		}
		out = *n
		return nil
	})
	if err != nil {
		if !errors.Is(err, errUnchanged) {
			s.log.Error("update notice", "reference", ref, "err", err)
		}
		return Notice{}, err
	}
	s.track(out)
	return out, nil
}

var errUnchanged = errors.New("notices: nothing to change")

// emailFinal records the email's final status, unless one was recorded
// already for this version: the first final status wins (later receipts
// are kept in the timeline only). A failure queues the letter.
func (s *Service) emailFinal(n *Notice, now time.Time, st Status, detail string) {
	if n.EmailStatus.final() {
		n.record(now, StatusRecorded, string(st)+" after "+string(n.EmailStatus)+": "+detail)
		if st == StatusPermanentFailure && n.EmailStatus == StatusDelivered { // a bounce after the MX accepted it
			s.queueLetter(n, now, "the email bounced after delivery: "+detail)
		}
		return
	}
	n.EmailStatus = st
	n.record(now, st, detail)
	if st != StatusDelivered {
		s.queueLetter(n, now, "the email was not delivered ("+string(st)+")")
	}
}

// checkStillSending gives up waiting on emails sending for longer than
// StillSendingAfter: temporary-failure, then the letter.
func (s *Service) checkStillSending(ctx context.Context) {
	// Cheap enough each tick for the embedded store only once a minute.
	now := s.now()
	if now.Sub(s.lastSweep) < time.Minute {
		return
	}
	s.lastSweep = now
	var late []string
	s.store.Each(ctx, func(n Notice) bool {
		if n.EmailStatus == StatusSending && now.Sub(sentAt(n)) >= s.cfg.StillSendingAfter {
			late = append(late, n.Reference)
		}
		return true
	})
	for _, ref := range late {
		s.update(ctx, ref, func(n *Notice) error {
			if n.EmailStatus != StatusSending {
				return errUnchanged
			}
			s.emailFinal(n, now, StatusTemporaryFailure, "still not delivered after "+s.cfg.StillSendingAfter.String())
			return nil
		})
	}
}

// sentAt is when the current version's email was queued.
func sentAt(n Notice) time.Time {
	for i := len(n.Timeline) - 1; i >= 0; i-- {
		if e := n.Timeline[i]; e.Status == StatusSending && e.Sequence == n.Sequence {
			return e.Time
		}
	}
	return n.Updated
}
