package smtpd

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/emersion/go-smtp"

	"nhsrelay/audit"
	"nhsrelay/relay"
)

// A RecipientHandler takes mail for special recipients instead of the
// queue: replies to the directory's verification challenges
// (smtpd/challengereply), and T.37 fax mail for the fax bridge. cmd wires
// them into Config.Handlers, so smtpd never imports what is behind them.
//
// A recipient a handler accepts is not checked against the directory, on
// any listener; everything else about the session is unchanged (on
// submission: TLS, AUTH, the sender's own MAIL FROM and From: header). A
// transaction's recipients are either all one handler's or all for the
// queue: a RCPT that would mix them is answered 452 4.5.3, which a client
// takes as "send this recipient in another transaction" (RFC 5321
// §4.5.3.1.10). Splitting one DATA between a handler and the queue would
// need one reply for two outcomes (LMTP's problem, RFC 2033 §4.2), so we
// never do.
type RecipientHandler interface {
	// Accepts reports whether addr, the RCPT TO address as the client
	// sent it, is the handler's. It is called on every RCPT and for the
	// transaction's first recipient again later, so it must be cheap and
	// give the same answer for the same addr.
	Accepts(addr string) bool

	// Handle takes one message whose recipients (env.Recipients) are all
	// the handler's. body is the message with our Received: header in
	// front, through the same checks as queued mail (bare CR or LF, header
	// size, MaxMessageBytes, data timeouts): a message that breaks one
	// fails a Read. Handle must read body to io.EOF before it acts, so
	// nothing acts on a message smtpd refuses; smtpd answers a failed read
	// with its own reply whatever Handle returns.
	//
	// On success Handle returns the text of the 250 reply ("verification
	// confirmed"). To refuse with a reply of its own it returns an error
	// wrapping a *HandlerError; any other error is logged and answered as
	// a local error (451 4.3.0), its text never sent.
	Handle(ctx context.Context, env relay.Envelope, body io.Reader) (string, error)
}

// HandlerError is how a RecipientHandler refuses a message with a reply of
// its own. Text is all the client sees, so it says what to do and names no
// internals; Err is the cause, logged with the connection id.
type HandlerError struct {
	Code    int // basic reply code, 4xx or 5xx
	Subject int // enhanced code subject and detail (RFC 3463); the class
	Detail  int // digit is Code's first, as for every reply (reply)
	Text    string
	Err     error
}

func (e *HandlerError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("smtpd: handler refused the message: %d %s", e.Code, e.Text)
	}
	return fmt.Sprintf("smtpd: handler refused the message: %d %s: %v", e.Code, e.Text, e.Err)
}

func (e *HandlerError) Unwrap() error { return e.Err }

// reply is the SMTP reply for e, or nil if e is not one we can send.
func (e *HandlerError) reply() *smtp.SMTPError {
	if e.Code < 400 || e.Code > 599 || e.Text == "" ||
		e.Subject < 0 || e.Subject > 999 || e.Detail < 0 || e.Detail > 999 {
		return nil
	}
	return reply(e.Code, e.Subject, e.Detail, oneLine(e.Text))
}

// handlerFor returns the index in Config.Handlers of the handler that
// takes addr, or -1.
func (s *Server) handlerFor(addr string) int {
	for i, h := range s.cfg.Handlers {
		if h.Accepts(addr) {
			return i
		}
	}
	return -1
}

// txnHandler returns the index of the handler the transaction's
// recipients are for, or -1 (none yet, or they are for the queue).
func (ss *session) txnHandler() int {
	if len(ss.rcpts) == 0 {
		return -1
	}
	return ss.s.handlerFor(ss.rcpts[0])
}

// handlerRcpt is Rcpt when to is handler h's (h >= 0) or the transaction
// is handler cur's (cur >= 0).
func (ss *session) handlerRcpt(to string, h, cur int) error {
	if len(ss.rcpts) > 0 && h != cur {
		// RFC 5321 §4.5.3.1.10: a client given 452 for a recipient tries
		// it again in a later transaction. Not an error the client made,
		// so it does not count towards MaxErrors.
		ss.s.m.rejected.WithLabelValues("rcpt_separate").Inc()
		ss.log.Info("refused", "reason", "rcpt_separate", "code", 452, "user", ss.user())
		return reply(452, 5, 3, "<"+oneLine(to)+">: send to this recipient in a separate message; the recipients accepted so far are kept")
	}
	ss.rcpts = append(ss.rcpts, to)
	ss.w.progress()
	return nil
}

// handleData is Data for a transaction whose recipients are handler h's:
// the body, through the same readers, goes to h instead of the queue.
func (ss *session) handleData(h RecipientHandler, env relay.Envelope, body io.Reader,
	dr *deadlineReader, eol *lineEndingReader, hr *headerReader) error {
	text, err := h.Handle(ss.ctx, env, body)
	if err == nil && !eol.eof && eol.err == nil {
		// The contract says Handle reads to EOF; finish the checks anyway.
		ss.log.Error("recipient handler returned before reading the whole message")
		if _, derr := io.Copy(io.Discard, body); derr != nil {
			err = fmt.Errorf("smtpd: finish reading for a handler: %w", derr)
		}
	}
	ss.w.setTxn(false)
	// Our readers' own findings first, even if the handler ignored them.
	cause := errors.Join(dr.err, eol.err, hr.err)
	if cause != nil && err == nil {
		ss.log.Error("recipient handler succeeded on a message smtpd refuses", "err", cause)
	}
	if cause == nil {
		cause = err
	}
	if cause != nil {
		var rep *smtp.SMTPError
		reason := dataReason(cause)
		var he *HandlerError
		if reason == "internal" && errors.As(cause, &he) {
			if rep = he.reply(); rep != nil {
				reason = "handler_refused"
			}
		}
		if rep == nil {
			rep = ss.s.toReply(cause, ss.w.cid)
		}
		if rep.Code == 421 {
			ss.w.closeAfterReply()
		}
		if reason == "internal" {
			ss.log.Error("recipient handler failed", "err", cause, "code", rep.Code)
		}
		if reason == "sender_not_owned" {
			ss.s.record(audit.Event{Actor: ss.user(), Action: "smtp.sender_refused",
				Outcome: "refused", Detail: "From: header not owned by the account"})
		}
		return ss.refuse(reason, rep, cause)
	}
	ss.w.progress()
	ss.log.Info("handled", "rcpts", len(env.Recipients), "bytes", dr.n, "outcome", "accepted", "code", 250)
	if text == "" {
		text = "Ok"
	}
	return reply(250, 0, 0, oneLine(text))
}
