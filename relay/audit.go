package relay

import "nhsrelay/audit"

// DESIGN: every step writes an audit event, and no delivery or DSN happens
// that the audit log cannot record. An attempt starts only while the log
// is up (auditDown, asked before each attempt; a message is deferred by
// RetryMin while it is down, never failed). The log can still fail between
// that check and the events an attempt writes after acting; such an event
// is kept in memory (auditBacklog, at most maxAuditBacklog) and written
// again, in order, as soon as the log takes records again, so the trail
// has it late rather than never. Each refusal is logged at error level.

// auditHealth is the optional ability of an audit.Recorder to say that it
// cannot record now; *audit.Log has it (Err), and recovers by itself.
type auditHealth interface {
	Err() error
}

var _ auditHealth = (*audit.Log)(nil)

// maxAuditBacklog bounds the events kept for a log that is down. Attempts
// stop while it is down, so only the few written in the moment it failed
// wait here.
const maxAuditBacklog = 10000

// auditDown returns why the audit log cannot record now, or nil once it
// can, after writing any events it refused before.
func (r *Relay) auditDown() error {
	if h, ok := r.cfg.Audit.(auditHealth); ok {
		if err := h.Err(); err != nil {
			return err
		}
	}
	return r.flushAudit()
}

// audit records ev, or keeps it for later if the log refuses it.
func (r *Relay) audit(ev audit.Event) {
	if r.cfg.Audit == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = r.cfg.Now()
	}
	if ev.Actor == "" {
		ev.Actor = "system"
	}
	// Records run concurrently (the log's group commit shares their
	// fsyncs); only a refused one takes the lock, to queue behind others.
	r.auditMu.Lock()
	waiting := len(r.auditBacklog) > 0
	r.auditMu.Unlock()
	if !waiting {
		err := r.cfg.Audit.Record(ev)
		if err == nil {
			return
		}
		r.log.Error("audit record failed; kept to write again when the log recovers", "msgid", ev.QueueID, "action", ev.Action, "err", err)
	}
	r.auditMu.Lock()
	defer r.auditMu.Unlock()
	if len(r.auditBacklog) >= maxAuditBacklog {
		r.log.Error("audit record dropped: too many events waiting for the audit log", "msgid", ev.QueueID, "action", ev.Action)
		return
	}
	r.auditBacklog = append(r.auditBacklog, ev) // behind older ones: order kept
}

// flushAudit writes the events the log refused, oldest first, and
// returns the error that stopped it, if any.
func (r *Relay) flushAudit() error {
	r.auditMu.Lock()
	defer r.auditMu.Unlock()
	for len(r.auditBacklog) > 0 {
		if err := r.cfg.Audit.Record(r.auditBacklog[0]); err != nil {
			return err
		}
		r.auditBacklog = r.auditBacklog[1:]
	}
	r.auditBacklog = nil
	return nil
}
