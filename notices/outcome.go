package notices

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"nhsrelay/relay"
	"nhsrelay/relay/dsn"
)

// parseVERP reads a notice ID and sequence from a return path made by
// verp; ok is false for anything else.
func (s *Service) parseVERP(addr string) (id string, seq int, ok bool) {
	local, domain, found := strings.Cut(addr, "@")
	if !found || !strings.EqualFold(domain, s.cfg.Hostname) {
		return "", 0, false
	}
	rest, found := strings.CutPrefix(strings.ToLower(local), "bounce+")
	if !found {
		return "", 0, false
	}
	id, n, found := strings.Cut(rest, ".")
	seq, err := strconv.Atoi(n)
	if !found || err != nil || id == "" || seq < 0 {
		return "", 0, false
	}
	return id, seq, true
}

// reference finds the notice an ID names.
func (s *Service) reference(id string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ref, ok := s.byID[id]
	return ref, ok
}

// NoticeOutcome is the relay's report of one delivery attempt
// (relay.NoticeObserver). It is idempotent: the first final status of a
// version wins, repeats are recorded only.
//
// Notice mail that is not a notice's (an SMTP notice account's: its
// return path is no VERP address of ours) is not handled: its sender gets
// DSNs from the relay.
func (s *Service) NoticeOutcome(ctx context.Context, o relay.NoticeOutcome) bool {
	id, seq, ok := s.parseVERP(o.From)
	if !ok {
		return false
	}
	ref, found := s.reference(id)
	if !found {
		s.log.Warn("relay outcome for a notice this service does not know; dropped", "queue_id", o.QueueID, "from", o.From)
		return true // a return path of ours: a DSN to it would come back to us
	}
	now := s.now()
	_, err := s.update(ctx, ref, func(n *Notice) error {
		detail := o.Text
		if o.Reply != "" {
			detail = o.Reply
		}
		if o.RemoteMTA != "" {
			detail = o.RemoteMTA + ": " + detail
		}
		if seq != n.Sequence {
			n.record(now, StatusRecorded, fmt.Sprintf("version %d: %s: %s", seq, o.Outcome, detail))
			return nil
		}
		switch {
		case o.Outcome == "delivered":
			s.emailFinal(n, now, StatusDelivered, "accepted by "+detail)
		case o.Outcome == "failed" && strings.HasPrefix(o.Text, "gave up after"):
			s.emailFinal(n, now, StatusTemporaryFailure, detail)
		case o.Outcome == "failed":
			s.emailFinal(n, now, StatusPermanentFailure, detail)
		case o.Attempts <= 3 && !n.EmailStatus.final(): // later deferrals: in the log, not the timeline
			n.record(now, StatusRecorded, "deferred, will retry: "+detail)
		default:
			return errUnchanged
		}
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		// Not recorded (update logged why): not handled, so the relay
		// sends its DSN to our return path and the BounceHandler gets a
		// second chance, instead of the outcome (and a failure's letter)
		// being dropped.
		return false
	}
	return true
}

// maxBounceBytes bounds a bounce read on the MX listener.
const maxBounceBytes = 1 << 20

// BounceHandler takes DSNs (RFC 3464) sent to notices' return paths on
// the MX listener. It has the methods of smtpd.RecipientHandler; cmd
// wires it there, so notices does not import smtpd.
type BounceHandler struct{ s *Service }

// BounceHandler returns the handler for this service's return paths.
func (s *Service) BounceHandler() *BounceHandler { return &BounceHandler{s: s} }

// Accepts reports whether addr is one of our VERP return paths.
func (h *BounceHandler) Accepts(addr string) bool {
	_, _, ok := h.s.parseVERP(strings.Trim(addr, "<>"))
	return ok
}

// ErrNotABounce means mail to a return path was not a DSN we can read.
var ErrNotABounce = errors.New("notices: not a delivery status notification (RFC 3464)")

// Handle reads one DSN: a failed recipient is a hard bounce
// (permanent-failure, then the letter); a delayed one is recorded. Mail
// that is not a DSN (an auto-reply, a patient's answer) is accepted and
// dropped, logged: the return path is not a mailbox.
func (h *BounceHandler) Handle(ctx context.Context, env relay.Envelope, body io.Reader) (string, error) {
	data, err := io.ReadAll(io.LimitReader(body, maxBounceBytes+1))
	if err != nil {
		return "", err
	}
	if len(data) > maxBounceBytes {
		return "", fmt.Errorf("bounce larger than %d bytes", maxBounceBytes)
	}
	rep, perr := dsn.Parse(strings.NewReader(string(data)))
	now := h.s.now()
	for _, to := range env.Recipients {
		id, seq, _ := h.s.parseVERP(to)
		ref, ok := h.s.reference(id)
		if !ok {
			h.s.log.Warn("bounce for no notice we know", "rcpt", to)
			continue
		}
		if perr != nil {
			h.s.log.Info("mail to a notice return path that is not a DSN; dropped", "notice", id, "err", perr)
			continue
		}
		_, err := h.s.update(ctx, ref, func(n *Notice) error {
			changed := false
			for _, rc := range rep.Recipients {
				detail := fmt.Sprintf("bounce from %s: %s %s", rep.ReportingMTA, rc.Status, rc.Diagnostic)
				switch {
				case seq != n.Sequence:
					n.record(now, StatusRecorded, fmt.Sprintf("version %d: %s", seq, detail))
				case rc.Action == dsn.Failed && strings.HasPrefix(rc.Status, "5"):
					h.s.emailFinal(n, now, StatusPermanentFailure, detail)
				default:
					n.record(now, StatusRecorded, string(rc.Action)+": "+detail)
				}
				changed = true
			}
			if !changed {
				return errUnchanged
			}
			return nil
		})
		if err != nil && !errors.Is(err, errUnchanged) {
			// Not recorded (update logged why): a 4xx keeps the bounce at
			// the reporting MTA to try again, rather than a 250 that drops
			// it and the letter a hard bounce would send.
			return "", fmt.Errorf("notices: bounce for %s not recorded: %w", ref, err)
		}
	}
	return "bounce recorded", nil
}
