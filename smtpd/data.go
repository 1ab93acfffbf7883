package smtpd

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-smtp"

	"nhsrelay/audit"
	"nhsrelay/relay"
)

// Data streams the message to the queue through the checks, and answers
// 250 only once Submit says it is durable. The chain, from the client:
//
//	go-smtp dataReader (dot-unstuffing, MaxMessageBytes → 552 5.3.4)
//	→ deadlineReader (DataTimeout, MinDataRate → 421 4.4.2)
//	→ lineEndingReader (bare CR/LF → 554 5.6.0)
//	→ headerReader (MaxHeaderBytes → 552 5.3.4; From: owned → 553 5.7.1)
//	→ our Received: header prepended → Queue.Submit
//
// Any reader's error makes Submit fail and commit nothing.
func (ss *session) Data(r io.Reader) error {
	if err := ss.gate(); err != nil {
		return err
	}
	if ss.mode.submission() && !ss.mayRelay() { // unreachable past Mail; defence in depth
		return ss.refuse("auth_required", reply(530, 7, 0, authRequired), nil)
	}
	if err := ss.auditGate(); err != nil { // the log may have failed since MAIL
		return err
	}
	// A 354 we saw go out means DATA on go-smtp's goroutine, whose raw
	// stream the wire scanned; otherwise BDAT (binary, length-counted).
	viaDATA := false
	if seq := ss.w.dataSeq.Load(); seq != ss.dataSeq {
		ss.dataSeq, viaDATA = seq, true
	}
	// Every read that brings message bytes is progress: with BDAT each
	// chunk is a command line (RFC 3030 §2), and a message in more chunks
	// than MaxJunkCommands must not be cut off as junk. A chunk with no
	// bytes (BDAT 0) moves nothing forward and still counts.
	dr := &deadlineReader{r: r, set: ss.w.setDataDeadline, progress: ss.w.progress,
		timeout: ss.s.limits().DataTimeout, rate: ss.s.limits().MinDataRate, start: time.Now()}
	eol := &lineEndingReader{r: dr}
	if viaDATA {
		eol.final = func() error {
			if ss.w.rawBare() {
				return fmt.Errorf("%w (before dot-unstuffing)", ErrBareLineEnding)
			}
			return nil
		}
	}
	hr := &headerReader{r: eol, limit: ss.s.limits().MaxHeaderBytes}
	if ss.account != nil {
		acct := *ss.account
		hr.check = func(h textproto.Header) error { return checkFrom(h, acct) }
	}
	env := relay.Envelope{From: ss.from, Recipients: slices.Clone(ss.rcpts), Account: ss.user(),
		ClientIP: ss.w.ip.String(), Inbound: ss.inbound, RcptDSN: ss.dsn.rcpts, Ret: ss.dsn.ret, EnvID: ss.dsn.envID}
	body := io.MultiReader(strings.NewReader(ss.received()), hr)
	if i := ss.txnHandler(); i >= 0 { // handler.go: to a RecipientHandler, not the queue
		return ss.handleData(ss.s.cfg.Handlers[i], env, body, dr, eol, hr)
	}

	id, err := ss.s.cfg.Queue.Submit(ss.ctx, env, body)
	ss.w.setTxn(false)
	if err != nil {
		// Our readers' own findings first: the queue may have wrapped them,
		// or not.
		cause := errors.Join(dr.err, eol.err, hr.err)
		if cause == nil {
			cause = err
		}
		rep := ss.s.toReply(cause, ss.w.cid)
		reason := dataReason(cause)
		if rep.Code == 421 {
			ss.w.closeAfterReply()
		}
		if reason == "internal" || reason == "storage_full" {
			ss.log.Error("queue submit failed", "err", err, "code", rep.Code)
		}
		if reason == "sender_not_owned" {
			ss.s.record(audit.Event{Actor: ss.user(), Action: "smtp.sender_refused",
				Outcome: "refused", Detail: "From: header not owned by the account"})
		}
		return ss.refuse(reason, rep, cause)
	}
	if !eol.eof {
		ss.log.Error("queue returned before reading the whole message", "msgid", id)
	}
	ss.w.progress()
	ss.s.m.accepted.WithLabelValues(ss.mode.String()).Inc()
	ss.log.Info("queued", "msgid", id, "rcpts", len(env.Recipients), "bytes", dr.n, "outcome", "accepted")
	actor := ss.user()
	if actor == "" {
		actor = "client " + ss.w.ip.String()
	}
	// One event per recipient: the list in one event would outgrow an
	// audit record (64 KiB) long before MaxRecipients. See audit.go for
	// why a failure here still answers 250.
	evs := make([]audit.Event, len(env.Recipients))
	for i, rcpt := range env.Recipients {
		evs[i] = audit.Event{Actor: actor, Action: "smtp.accepted", QueueID: id,
			Endpoint: rcpt, Outcome: "ok", Detail: "via " + ss.mode.String()}
	}
	if err := ss.s.recordAll(evs); err != nil {
		ss.log.Error("accepted message not fully audited; it stays queued", "msgid", id, "err", err)
	}
	return reply(250, 0, 0, "Ok: queued as "+id)
}

func dataReason(err error) string {
	var snd *senderError
	switch {
	case errors.Is(err, ErrBareLineEnding):
		return "bare_line_ending"
	case errors.Is(err, ErrHeaderTooLarge):
		return "header_too_large"
	case errors.Is(err, ErrHeaderMalformed):
		return "header_malformed"
	case errors.As(err, &snd):
		return "sender_not_owned"
	case errors.Is(err, ErrDataTimeout):
		return "data_timeout"
	case errors.Is(err, smtp.ErrDataTooLarge):
		return "message_too_large"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "client_gone"
	case errors.Is(err, smtp.ErrTooLongLine): // the client's fault, not ours
		return "line_too_long"
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return "storage_full"
	}
	return "internal"
}

// deadlineReader bounds DATA in time: each read must arrive within timeout,
// and after timeout of grace the client must keep up rate bytes/s
// (Postfix smtpd_min_data_rate): by then it must have sent
// rate × (elapsed − timeout) bytes. Deadlines are wall-clock: they are I/O.
type deadlineReader struct {
	r        io.Reader
	set      func(time.Time) error
	progress func() // called when a read brought bytes
	timeout  time.Duration
	rate     int
	start    time.Time
	n        int64
	err      error
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	dl := time.Now().Add(d.timeout)
	if d.rate > 0 {
		budget := d.start.Add(d.timeout + time.Duration(d.n)*time.Second/time.Duration(d.rate))
		if budget.Before(dl) {
			dl = budget
		}
	}
	d.set(dl)
	n, err := d.r.Read(p)
	d.n += int64(n)
	if n > 0 && d.progress != nil {
		d.progress()
	}
	if err != nil && err != io.EOF {
		if isTimeout(err) {
			err = fmt.Errorf("%w after %d bytes: %w", ErrDataTimeout, d.n, err)
		}
		d.err = err
	}
	return n, err
}

// lineEndingReader fails the stream at the first CR or LF that is not part
// of a CRLF pair: RFC 5321 §2.3.8, and the SMTP smuggling fix (CVE-2023-51764
// class) — no bare CR or LF is ever passed on. final runs at EOF.
type lineEndingReader struct {
	r      io.Reader
	final  func() error
	prevCR bool
	off    int64
	eof    bool
	err    error
}

func (l *lineEndingReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.r.Read(p)
	for i, c := range p[:n] {
		if l.prevCR != (c == '\n') {
			l.err = fmt.Errorf("%w at octet %d", ErrBareLineEnding, l.off+int64(i))
			return i, l.err
		}
		l.prevCR = c == '\r'
	}
	l.off += int64(n)
	if err == io.EOF {
		if l.prevCR {
			l.err = fmt.Errorf("%w at the end", ErrBareLineEnding)
			return n, l.err
		}
		if l.final != nil {
			if l.err = l.final(); l.err != nil {
				return n, l.err
			}
		}
		l.eof = true
	}
	return n, err
}
