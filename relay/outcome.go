package relay

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"nhsrelay/audit"
	"nhsrelay/relay/dsn"
	"nhsrelay/relay/queue"
)

// errFinished aborts the record update of a message that is finished, so
// that it is deleted instead.
var errFinished = errors.New("relay: message finished")

// finish applies one attempt's results: DSNs are queued first (a crash
// after that repeats a DSN, never loses one), then the record is updated,
// then a message whose recipients are all final is removed.
func (r *Relay) finish(ctx context.Context, m queue.Message, results map[string]result) {
	if len(results) == 0 {
		r.schedule(m)
		return
	}
	now := r.cfg.Now()
	giveUp := m.Received.Add(r.cfg.GiveUpAfter)
	var failed, delayed []dsn.Recipient
	var holdWords []string
	final := map[string]result{} // address → result after policy
	delayNotice := map[string]bool{}
	for _, rc := range m.Recipients {
		res, ok := results[rc.Address]
		if !ok {
			continue
		}
		if res.outcome == temporary && !now.Before(giveUp) {
			res.outcome = permanent
			res.text = "gave up after " + r.cfg.GiveUpAfter.String() + ": " + res.text
			res.status = "5" + res.status[1:]
		}
		d := dsn.Recipient{FinalRecipient: rc.Address, Status: res.status, RemoteMTA: res.remoteMTA,
			LastAttemptDate: now}
		if res.reply != "" {
			d.DiagnosticType, d.Diagnostic = "smtp", res.reply
		} else {
			d.DiagnosticType, d.Diagnostic = "X-NHSRelay", res.text
		}
		switch res.outcome {
		case permanent:
			d.Action = dsn.Failed
			failed = append(failed, d)
		case held:
			d.Action = dsn.Failed
			failed = append(failed, d)
			holdWords = append(holdWords, rc.Address+": "+res.text)
		case temporary:
			if !rc.DelayNotified && !now.Before(m.Received.Add(r.cfg.DelayWarnAfter)) {
				d.Action, d.WillRetryUntil = dsn.Delayed, giveUp
				delayed = append(delayed, d)
				delayNotice[rc.Address] = true
			}
		}
		final[rc.Address] = res
	}
	if len(failed) > 0 {
		expl := ""
		if len(holdWords) > 0 {
			expl = "The message is held on this relay and was not sent, because it could not be " +
				"protected for every recipient (" + strings.Join(holdWords, "; ") + "). " +
				"An administrator can release it once the recipient's certificate is valid."
		}
		r.sendDSN(ctx, m, failed, expl)
	}
	if len(delayed) > 0 {
		r.sendDSN(ctx, m, delayed, "")
	}

	var updated queue.Message
	err := r.store.Update(ctx, m.ID, func(cur *queue.Message) error {
		for i := range cur.Recipients {
			rc := &cur.Recipients[i]
			res, ok := final[rc.Address]
			if !ok || rc.State != queue.Queued {
				continue
			}
			rc.Attempts++
			rc.LastCode, rc.LastError = res.status, res.text
			switch res.outcome {
			case delivered:
				rc.State = queue.Delivered
			case permanent:
				rc.State = queue.Failed
			case held:
				rc.State = queue.Held
			case temporary:
				next := now.Add(r.backoff(rc.Attempts))
				if next.After(giveUp) {
					next = giveUp // the last try happens at the give-up time
				}
				rc.NextAttempt = next
				if delayNotice[rc.Address] {
					rc.DelayNotified = true
				}
			}
		}
		updated = *cur
		if done(updated) {
			return errFinished // deleted below: one commit instead of two
		}
		return nil
	})
	if errors.Is(err, errFinished) {
		r.report(m, final, now)
		if err := r.remove(ctx, m.ID); err != nil {
			// The record stays as it was; the next attempt finds the
			// deliveries already made (Maildir is idempotent by key).
			r.log.Error("remove finished message", "msgid", m.ID, "err", err)
			r.deferEntry(m.ID)
		}
		return
	}
	if errors.Is(err, queue.ErrNotFound) {
		r.mu.Lock()
		delete(r.pending, m.ID)
		r.mu.Unlock()
		return
	}
	if err != nil {
		// The next attempt repeats these deliveries; Maildir is idempotent,
		// a remote hop may see a duplicate, which is better than a loss.
		r.log.Error("record delivery outcome", "msgid", m.ID, "err", err)
		r.deferEntry(m.ID)
		return
	}
	r.report(m, final, now)
	r.schedule(updated)
}

// report logs, counts and audits each recipient's outcome. Never subject
// or body: only IDs, addresses, endpoint and words about the outcome.
func (r *Relay) report(m queue.Message, final map[string]result, now time.Time) {
	for _, rc := range m.Recipients {
		res, ok := final[rc.Address]
		if !ok {
			continue
		}
		attrs := []any{"msgid", m.ID, "rcpt", rc.Address, "endpoint", res.endpoint,
			"code", res.status, "remote", res.remoteMTA, "attempts", rc.Attempts + 1}
		ev := audit.Event{Time: now, QueueID: m.ID, Endpoint: res.endpoint, Detail: res.text}
		switch res.outcome {
		case delivered:
			r.metrics.delivered.WithLabelValues(res.kind).Inc()
			r.metrics.latency.Observe(now.Sub(m.Received).Seconds())
			r.log.Info("delivered", append(attrs, "outcome", "delivered")...)
			ev.Action, ev.Outcome = "delivered", "ok"
		case temporary:
			r.metrics.deferred.Inc()
			r.log.Warn("deferred", append(attrs, "outcome", "deferred", "reason", res.text)...)
			ev.Action, ev.Outcome = "deferred", "retry"
		case permanent:
			r.metrics.bounced.Inc()
			r.log.Warn("bounced", append(attrs, "outcome", "bounced", "reason", res.text)...)
			ev.Action, ev.Outcome = "bounced", "failed"
		case held:
			r.metrics.held.Inc()
			r.log.Warn("held", append(attrs, "outcome", "held", "reason", res.text)...)
			ev.Action, ev.Outcome = "held", "held"
		}
		r.audit(ev)
	}
}

// sendDSN queues an RFC 3464 report to m's envelope sender with a null
// reverse-path. RFC 5321 §4.5.5: a message with a null reverse-path (a DSN
// itself) never gets one, so notifications cannot loop.
func (r *Relay) sendDSN(ctx context.Context, m queue.Message, rcpts []dsn.Recipient, explanation string) {
	if m.From == "" {
		r.log.Info("no DSN for a message with a null sender", "msgid", m.ID, "action", string(rcpts[0].Action))
		return
	}
	hdr, err := r.originalHeader(m.ID)
	if err != nil {
		r.log.Error("read original header for DSN", "msgid", m.ID, "err", err)
		hdr = nil
	}
	now := r.cfg.Now()
	rep := dsn.Report{
		ReportingMTA: r.cfg.Hostname, QueueID: m.ID, ArrivalDate: m.Received, Recipients: rcpts,
		Headers: hdr, From: "MAILER-DAEMON@" + r.cfg.Hostname, To: m.From, Date: now,
		MessageID: NewID() + "@" + r.cfg.Hostname, Explanation: explanation,
	}
	var buf bytes.Buffer
	if err := dsn.Write(&buf, rep); err != nil {
		r.log.Error("build DSN", "msgid", m.ID, "err", err)
		return
	}
	id, err := r.Submit(ctx, Envelope{From: "", Recipients: []string{m.From}}, &buf)
	if err != nil {
		r.log.Error("queue DSN", "msgid", m.ID, "err", err)
		return
	}
	r.metrics.dsns.WithLabelValues(string(rcpts[0].Action)).Inc()
	r.log.Info("DSN queued", "msgid", m.ID, "dsn_msgid", id, "rcpt", m.From, "action", string(rcpts[0].Action))
}

// originalHeader reads the header block of a spooled message (up to the
// first empty line, at most dsn.MaxHeaderBytes, whole lines only) with
// CRLF line endings. The body is never read.
func (r *Relay) originalHeader(id string) ([]byte, error) {
	f, err := r.spool.Open(id)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReader(io.LimitReader(f, dsn.MaxHeaderBytes))
	var out bytes.Buffer
	for {
		line, err := br.ReadString('\n')
		if err != nil { // EOF inside the header, or past the limit: whole lines only
			return out.Bytes(), nil
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return out.Bytes(), nil
		}
		if out.Len()+len(line)+2 > dsn.MaxHeaderBytes {
			return out.Bytes(), nil
		}
		out.WriteString(line + "\r\n")
	}
}
