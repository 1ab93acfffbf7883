package relay

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"nhsrelay/audit"
	"nhsrelay/relay/dsn"
	"nhsrelay/relay/queue"
)

// errFinished aborts the record update of a message that is finished, so
// that it is deleted instead.
var errFinished = errors.New("relay: message finished")

// outcomeTimeout bounds recording one attempt's outcome: the DSNs, the
// record update and the removal of a finished message.
const outcomeTimeout = time.Minute

// finish applies one attempt's results: DSNs are queued first (a crash
// after that repeats a DSN, never loses one), then the record is updated,
// then a message whose recipients are all final is removed.
//
// It runs on a context detached from the attempt's, with its own bound:
// an attempt that used up its AttemptTimeout on one hop must still record
// what the other hops did, or a recipient already delivered would be
// delivered again and a deferred one would never back off.
func (r *Relay) finish(actx context.Context, m queue.Message, results map[string]result) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(actx), outcomeTimeout)
	defer cancel()
	if len(results) == 0 {
		r.schedule(m)
		return
	}
	now := r.cfg.Now()
	giveUp := m.Received.Add(r.cfg.GiveUpAfter)
	var failed, delayed, succeeded []dsn.Recipient
	var suppressed []string // NOTIFY left out a failure or delay notice: logged and audited instead
	var holdWords []string
	final := map[string]result{} // address → result after policy
	delayNotice := map[string]bool{}
	newHold := map[string]bool{} // held for a reason the sender has not been told
	for _, rc := range m.Recipients {
		res, ok := results[rc.Address]
		if !ok {
			continue
		}
		if (res.outcome == temporary || res.outcome == held) && !now.Before(giveUp) {
			res.outcome = permanent
			res.text = "gave up after " + r.cfg.GiveUpAfter.String() + ": " + res.text
			res.status = "5" + res.status[1:]
		}
		d := dsn.Recipient{FinalRecipient: rc.Address, OriginalRecipient: rc.ORcpt, Status: res.status,
			RemoteMTA: res.remoteMTA, LastAttemptDate: now}
		if res.reply != "" {
			d.DiagnosticType, d.Diagnostic = "smtp", res.reply
		} else {
			d.DiagnosticType, d.Diagnostic = "X-NHSRelay", res.text
		}
		switch res.outcome {
		case delivered:
			if a, ok := successAction(rc, res); ok {
				d.Action = a
				succeeded = append(succeeded, d)
			}
		case permanent:
			d.Action = dsn.Failed
			if wants(rc, notifyFailure) {
				failed = append(failed, d)
			} else {
				suppressed = append(suppressed, rc.Address)
			}
			if isDSN(m) {
				r.dsnUndeliverable(m, rc.Address, res.text)
			}
		case held:
			// Told once per reason: a retry or a re-evaluation that holds
			// it again for the same reason sends nothing new.
			if rc.HoldNotified != res.text {
				d.Action, d.HeldUntil = dsn.Failed, giveUp
				if wants(rc, notifyFailure) {
					failed = append(failed, d)
					holdWords = append(holdWords, rc.Address+": "+res.text)
				} else {
					suppressed = append(suppressed, rc.Address)
				}
				newHold[rc.Address] = true
			}
		case temporary:
			if !rc.DelayNotified && !now.Before(m.Received.Add(r.cfg.DelayWarnAfter)) {
				d.Action, d.WillRetryUntil = dsn.Delayed, giveUp
				if wants(rc, notifyDelay) {
					delayed = append(delayed, d)
				}
				delayNotice[rc.Address] = true
			}
		}
		final[rc.Address] = res
	}
	if len(failed) > 0 {
		expl := ""
		if len(holdWords) > 0 {
			expl = "The message is held on this relay and has not been sent to " + plural(len(holdWords), "this recipient", "these recipients") +
				", because it cannot be sent to them safely (" + strings.Join(holdWords, "; ") + "). " +
				"The relay looks at it again at each retry and sends it as soon as it safely can, for example once the " +
				"recipient's S/MIME certificate is renewed in the NHS directory or its endpoint is verified. If it still " +
				"cannot by " + giveUp.UTC().Format(time.RFC1123) + ", it gives up and you will be told. " +
				"An administrator can have it looked at again at once, or delete it (queue ID " + m.ID + ")."
		}
		if why := lostIn(results); why != "" { // lost.go
			expl = r.lostExplanation(m)
			r.alertLost(m, why)
		}
		r.sendDSN(ctx, m, failed, expl)
	}
	if len(delayed) > 0 {
		r.sendDSN(ctx, m, delayed, "")
	}
	if len(succeeded) > 0 {
		r.sendDSN(ctx, m, succeeded, r.receiptText(m, succeeded, results))
	}
	r.noteSuppressed(m, suppressed)

	var updated queue.Message
	err := r.store.Update(ctx, m.ID, func(cur *queue.Message) error {
		for i := range cur.Recipients {
			rc := &cur.Recipients[i]
			res, ok := final[rc.Address]
			if !ok || rc.State != queue.Queued && rc.State != queue.Held {
				continue
			}
			rc.Attempts++
			rc.LastCode, rc.LastError = res.status, res.text
			next := now.Add(r.backoff(rc.Attempts))
			if next.After(giveUp) {
				next = giveUp // the last try happens at the give-up time
			}
			switch res.outcome {
			case delivered:
				rc.State = queue.Delivered
			case permanent:
				rc.State = queue.Failed
			case held:
				rc.State, rc.NextAttempt, rc.HoldNotified = queue.Held, next, res.text
			case temporary:
				rc.State, rc.NextAttempt = queue.Queued, next
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
		r.report(m, final, newHold, now)
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
		r.forgetLocked(m.ID)
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
	r.report(m, final, newHold, now)
	r.schedule(updated)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// report logs, counts and audits each recipient's outcome. Never subject
// or body: only IDs, addresses, endpoint and words about the outcome. A
// recipient held again for the reason already told is logged, not counted
// or audited again.
func (r *Relay) report(m queue.Message, final map[string]result, newHold map[string]bool, now time.Time) {
	for _, rc := range m.Recipients {
		res, ok := final[rc.Address]
		if !ok {
			continue
		}
		attrs := []any{"msgid", m.ID, "rcpt", rc.Address, "endpoint", res.endpoint,
			"code", res.status, "remote", res.remoteMTA, "attempts", rc.Attempts + 1}
		ev := audit.Event{Time: now, QueueID: m.ID, Endpoint: res.endpoint, Detail: audit.WithFields(res.text, outcomeFields(rc, res))}
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
			if !newHold[rc.Address] {
				r.log.Info("still held", append(attrs, "outcome", "held", "reason", res.text)...)
				continue
			}
			r.metrics.held.Inc()
			r.log.Warn("held", append(attrs, "outcome", "held", "reason", res.text)...)
			ev.Action, ev.Outcome = "held", "held"
		}
		// Following a redirect is audited once per message and recipient:
		// when the recipient's outcome is final (delivered, or failed at
		// the target), never on each retry that follows it again.
		if res.redirect != nil && (res.outcome == delivered || res.outcome == permanent) {
			rev := res.redirect.RedirectEvent()
			rev.Time, rev.Actor, rev.QueueID = now, "system", m.ID
			r.audit(rev)
		}
		r.audit(ev)
	}
}

// sendDSN queues an RFC 3464 report to m's envelope sender with a null
// reverse-path, as System mail. RFC 5321 §4.5.5: a message with a null
// reverse-path (a DSN itself) never gets one, so notifications cannot
// loop.
//
// Where it goes is decided as its delivery will route it (route, as a
// DSN): to the sender's endpoint if the directory has one, otherwise to
// the MX hosts of the sender's domain over verified TLS. The latter only
// for mail submitted on this relay (an account or a trusted network): for
// mail from another relay, a sender outside the NHS directory gets no
// DSN (no backscatter to forged senders); that is logged, counted and
// audited, never silent.
//
// The original header goes back whole only to a sender hosted here (the
// DSN never leaves this relay). Anywhere else the DSN may travel unsealed
// over TLS (System mail to a recipient without a valid certificate), so
// the free-text fields that may name a patient (Subject, Comments,
// Keywords, Thread-Topic) are left out; Message-ID, Date, From and To
// still identify the message to its sender.
func (r *Relay) sendDSN(ctx context.Context, m queue.Message, rcpts []dsn.Recipient, explanation string) {
	if m.From == "" {
		r.log.Info("no DSN for a message with a null sender", "msgid", m.ID, "action", string(rcpts[0].Action))
		return
	}
	t, res := r.route(ctx, queue.Message{ID: m.ID, System: true}, m.From)
	switch {
	case res != nil && res.outcome != temporary:
		r.dsnUndeliverable(m, m.From, "the sender's address cannot receive it: "+res.text)
		return
	case res == nil && t.ep.ID == "" && m.Inbound:
		r.dsnUndeliverable(m, m.From, "the sender's address is not in the NHS directory and the message came from another relay")
		return
	}
	keepSubject := res == nil && t.ep.Hosted() // a directory failure: the DSN is routed later, Subject left out
	hdr, err := r.originalHeader(m.ID, keepSubject)
	if err != nil {
		r.log.Error("read original header for DSN", "msgid", m.ID, "err", err)
		hdr = nil
	}
	now := r.cfg.Now()
	rep := dsn.Report{
		ReportingMTA: r.cfg.Hostname, QueueID: m.ID, ArrivalDate: m.Received, Recipients: rcpts,
		EnvelopeID: m.EnvID, Headers: hdr, From: "MAILER-DAEMON@" + r.cfg.Hostname, To: m.From, Date: now,
		MessageID: NewID() + "@" + r.cfg.Hostname, Explanation: explanation,
	}
	var buf bytes.Buffer
	if err := dsn.Write(&buf, rep); err != nil {
		r.log.Error("build DSN", "msgid", m.ID, "err", err)
		return
	}
	id, err := r.Submit(ctx, Envelope{From: "", Recipients: []string{m.From}, System: true}, &buf)
	if err != nil {
		r.log.Error("queue DSN", "msgid", m.ID, "err", err)
		return
	}
	r.metrics.dsns.WithLabelValues(string(rcpts[0].Action)).Inc()
	r.log.Info("DSN queued", "msgid", m.ID, "dsn_msgid", id, "rcpt", m.From, "action", string(rcpts[0].Action))
	about := make([]string, len(rcpts))
	for i, d := range rcpts {
		about[i] = d.FinalRecipient
	}
	r.audit(audit.Event{Action: "dsn.sent", QueueID: m.ID, Endpoint: m.From, Outcome: "ok",
		Detail: audit.WithFields(string(rcpts[0].Action)+" notice queued for the sender", audit.Fields{
			"action": string(rcpts[0].Action), "dsn_id": id, "to": m.From, "rcpts": strings.Join(about, ",")})})
}

// outcomeFields are the facts of one attempt for one recipient that the
// timeline shows: where it went (the next hop, its TLS version and
// certificate, its reply) and what it was asked to report.
func outcomeFields(rc queue.Recipient, res result) audit.Fields {
	f := audit.Fields{"rcpt": rc.Address, "code": res.status, "via": res.kind, "remote": res.remoteMTA,
		"tls": res.tls, "peer": res.peer, "reply": res.reply, "attempt": strconv.Itoa(rc.Attempts + 1)}
	if res.dsnPassed {
		f["dsn"] = "passed on"
	}
	return f
}

// dsnUndeliverable records a DSN that cannot reach the sender: about
// message m (the original, or the DSN itself when its delivery failed) for
// rcpt. Logged at error level, counted and audited: never silent.
func (r *Relay) dsnUndeliverable(m queue.Message, rcpt, why string) {
	r.metrics.dsnLost.Inc()
	r.log.Error("DSN undeliverable", "msgid", m.ID, "rcpt", rcpt, "reason", why)
	r.audit(audit.Event{Action: "dsn.undeliverable", QueueID: m.ID, Endpoint: rcpt, Outcome: "failed", Detail: why})
}

// privateField reports whether a DSN leaving this relay leaves out the
// header field name: free text that may name a patient (RFC 5322 §3.6.5
// Subject, Comments, Keywords; Outlook's Thread-Topic copies the Subject).
func privateField(name string) bool {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "subject", "comments", "keywords", "thread-topic":
		return true
	}
	return false
}

// originalHeader reads the header block of a spooled message (up to the
// first empty line, at most dsn.MaxHeaderBytes, whole lines only) with
// CRLF line endings, without the fields privateField names unless keepPrivate. The body is
// never read.
func (r *Relay) originalHeader(id string, keepPrivate bool) ([]byte, error) {
	f, err := r.spool.Open(id)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReader(io.LimitReader(f, dsn.MaxHeaderBytes))
	var out bytes.Buffer
	skip := false // inside a field left out, continuation lines included
	for {
		line, err := br.ReadString('\n')
		if err != nil { // EOF inside the header, or past the limit: whole lines only
			return out.Bytes(), nil
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return out.Bytes(), nil
		}
		if line[0] != ' ' && line[0] != '\t' { // RFC 5322 §2.2.3: a field starts unfolded
			name, _, _ := strings.Cut(line, ":")
			skip = !keepPrivate && privateField(name)
		}
		if skip {
			continue
		}
		if out.Len()+len(line)+2 > dsn.MaxHeaderBytes {
			return out.Bytes(), nil
		}
		out.WriteString(line + "\r\n")
	}
}
