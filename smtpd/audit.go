package smtpd

import (
	"errors"
	"sync"
	"syscall"

	"nhsrelay/audit"
)

// DESIGN: every step writes an audit event. smtpd fails closed on the
// audit log in the one way that cannot go wrong: it refuses to take a
// message on (451 4.3.0 at MAIL and again before DATA is queued) while the
// log says it is broken, so no message is accepted that it could not
// audit. The acceptance itself is recorded after the queue has the message
// durably and before 250 is sent. If that record fails — the log broke in
// the moment between the check and the record — the reply is still 250:
// the message is already in the queue and will be delivered, so a 451 would
// only make the client send it a second time. That rare case is logged at
// error level with the queue ID and counted
// (nhsrelay_smtpd_audit_failures_total), and the relay's own audit events
// for the message follow it.

// auditHealth is the optional ability of an audit.Recorder to say that it
// is broken for good; *audit.Log has it (Err). A Recorder without it is
// trusted until one of its Records fails.
type auditHealth interface {
	Err() error
}

var _ auditHealth = (*audit.Log)(nil)

// auditDown returns why events cannot be recorded now, or nil.
func (s *Server) auditDown() error {
	if h, ok := s.cfg.Audit.(auditHealth); ok {
		return h.Err()
	}
	return nil
}

// auditGate refuses to open or complete a transaction while the audit log
// is down.
func (ss *session) auditGate() error {
	err := ss.s.auditDown()
	if err == nil {
		return nil
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) { // the disk the audit log is on is full
		ss.log.Error("audit log unavailable (disk full), refusing mail", "err", err, "code", 452)
		return ss.refuse("storage_full", reply(452, 3, 1,
			"insufficient system storage on this relay; mail cannot be accepted now, try again later"), nil) // RFC 3463 §3.4
	}
	ss.log.Error("audit log unavailable, refusing mail", "err", err, "code", 451)
	return ss.refuse("audit_unavailable", reply(451, 3, 0,
		"mail cannot be accepted now (audit trail unavailable); try again later, or quote "+ss.w.cid+" to the service desk"), nil)
}

// record writes one event; a failure is logged and counted, not returned:
// the events recorded this way go with refusals, which stand either way.
func (s *Server) record(ev audit.Event) {
	if err := s.recordAll([]audit.Event{ev}); err != nil {
		s.cfg.Logger.Error("audit record failed", "action", ev.Action, "msgid", ev.QueueID, "err", err)
	}
}

// maxAuditWorkers bounds the Records in flight for one message.
const maxAuditWorkers = 16

// recordAll writes evs, several at a time so that the log's group commit
// covers them with few fsyncs (one event per recipient: up to
// MaxRecipients), and returns every failure joined.
func (s *Server) recordAll(evs []audit.Event) error {
	if s.cfg.Audit == nil {
		return nil
	}
	now := s.cfg.Now()
	errs := make([]error, len(evs))
	sem := make(chan struct{}, maxAuditWorkers)
	var wg sync.WaitGroup
	for i := range evs {
		evs[i].Time = now
		if len(evs) == 1 {
			errs[i] = s.cfg.Audit.Record(evs[i])
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = s.cfg.Audit.Record(evs[i])
		})
	}
	wg.Wait()
	n := 0
	for _, err := range errs {
		if err != nil {
			n++
		}
	}
	s.m.auditFailures.Add(float64(n))
	return errors.Join(errs...)
}
