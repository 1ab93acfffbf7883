package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"nhsrelay/audit"
	"nhsrelay/directory"
)

// lookupTimeout bounds each directory call made for a client.
const lookupTimeout = 30 * time.Second

// session is one go-smtp Session: from EHLO to Logout (go-smtp starts a new
// one after STARTTLS). go-smtp's methods take no context, so the session
// makes one and cancels it in Logout.
type session struct {
	s      *Server
	mode   Mode
	c      *smtp.Conn
	w      *wireConn
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger

	account *directory.Account
	from    string
	rcpts   []string
	dsn     txnDSN // RFC 3461 parameters of the transaction (dsn.go)
	inbound bool   // every recipient so far is hosted here
	dataSeq int64  // last wireConn.dataSeq this session consumed
}

func (s *Server) newSession(c *smtp.Conn, mode Mode) (smtp.Session, error) {
	w := wireOf(c.Conn())
	if w == nil {
		s.cfg.Logger.Error("smtpd: connection not admitted through our listener")
		return nil, reply(421, 3, 0, "local error, try again later")
	}
	if v := w.violated(); v != "" {
		return nil, protocolReply(v)
	}
	w.setTop(c.Conn())
	ss := &session{s: s, mode: mode, c: c, w: w, dataSeq: w.dataSeq.Load()}
	ss.ctx, ss.cancel = context.WithCancel(context.Background())
	ss.log = s.cfg.Logger.With("cid", w.cid, "client", w.ip.String(), "mode", mode.String())
	ss.log.Debug("session", "helo", c.Hostname(), "tls", ss.tls())
	return ss, nil
}

// tls reports whether the session runs over TLS: implicit on 465, or
// after STARTTLS, both done by wireConn below go-smtp.
func (ss *session) tls() bool { return ss.w.tlsConn != nil }

// ehloFirst refuses a command sent after STARTTLS before a new EHLO.
func (ss *session) ehloFirst() error {
	if ss.w.needEHLO() {
		return ss.refuse("ehlo_after_starttls", reply(503, 5, 1, "send EHLO again after STARTTLS (RFC 3207 §4.2)"), nil)
	}
	return nil
}

func wireOf(c net.Conn) *wireConn {
	switch c := c.(type) {
	case *wireConn:
		return c
	case *tls.Conn:
		w, _ := c.NetConn().(*wireConn)
		return w
	}
	return nil
}

// refuse counts and logs a refusal and returns the reply to send: r, or
// 421 4.7.0 once the client has made MaxErrors errors (Postfix's
// smtpd_hard_error_limit), after which the connection closes.
func (ss *session) refuse(reason string, r *smtp.SMTPError, err error) *smtp.SMTPError {
	ss.s.m.rejected.WithLabelValues(reason).Inc()
	args := []any{"reason", reason, "code", r.Code, "user", ss.user()}
	if err != nil {
		args = append(args, "err", err)
	}
	ss.log.Info("refused", args...)
	if ss.w.addError() {
		ss.s.m.rejected.WithLabelValues("error_limit").Inc()
		ss.log.Warn("error limit reached, closing", "code", 421)
		return reply(421, 7, 0, ss.s.cfg.Hostname+" too many errors, closing connection; correct what the replies named, then reconnect")
	}
	return r
}

func (ss *session) user() string {
	if ss.account == nil {
		return ""
	}
	return ss.account.Username
}

// gate stops a session whose client broke the protocol, and a command
// after STARTTLS that did not start again with EHLO.
func (ss *session) gate() error {
	if v := ss.w.violated(); v != "" {
		return protocolReply(v)
	}
	return ss.ehloFirst()
}

// mayRelay: authenticated, or from a trusted network.
func (ss *session) mayRelay() bool { return ss.account != nil || ss.w.trusted }

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if err := ss.gate(); err != nil {
		return err
	}
	if rep := checkPath(from, true); rep != nil {
		return ss.refuse("sender_syntax", rep, nil)
	}
	if ss.mode.submission() && !ss.w.trusted {
		if !ss.tls() {
			return ss.refuse("tls_required", reply(530, 7, 0, "Must issue a STARTTLS command first"), nil) // RFC 3207 §4
		}
		if ss.account == nil {
			return ss.refuse("auth_required", reply(530, 7, 0, authRequired), nil) // RFC 4954 §6
		}
	}
	if err := ss.refreshAccount(); err != nil { // account.go: disabled or changed since AUTH
		return err
	}
	if ss.account != nil && (from == "" || !ss.account.Owns(from)) {
		ss.s.record(audit.Event{Actor: ss.account.Username, Action: "smtp.sender_refused",
			Outcome: "refused", Detail: "MAIL FROM not owned by the account"})
		return ss.refuse("sender_not_owned", reply(553, 7, 1,
			fmt.Sprintf("<%s>: sender address not owned by user %s; send from an address your account owns", oneLine(from), ss.account.Username)), nil)
	}
	if err := ss.auditGate(); err != nil {
		return err
	}
	ss.from, ss.rcpts, ss.inbound = from, nil, ss.mode == MX
	ss.dsn = newTxnDSN(opts)
	ss.w.setTxn(true)
	ss.w.progress()
	return nil
}

func (ss *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if err := ss.gate(); err != nil {
		return err
	}
	if ss.mode.submission() && !ss.mayRelay() { // Mail refuses first; never rely on it alone
		return ss.refuse("auth_required", reply(530, 7, 0, authRequired), nil)
	}
	if rep := checkPath(to, false); rep != nil {
		return ss.refuse("rcpt_syntax", rep, nil)
	}
	if err := ss.refreshAccount(); err != nil {
		return err
	}
	if h, cur := ss.s.handlerFor(to), ss.txnHandler(); h >= 0 || cur >= 0 {
		return ss.handlerRcpt(to, h, cur) // handler.go: not a directory endpoint
	}
	ctx, cancel := context.WithTimeout(ss.ctx, lookupTimeout)
	ep, err := ss.s.cfg.Directory.CheckRecipient(ctx, to)
	cancel()
	if err != nil {
		var nv *directory.NotVerifiedError
		reason := "rcpt_lookup_failed"
		switch {
		case errors.Is(err, directory.ErrNotFound):
			reason = "rcpt_unknown"
		case errors.As(err, &nv):
			reason = "rcpt_not_verified"
		}
		rep := ss.s.toReply(err, ss.w.cid)
		if reason == "rcpt_unknown" { // name the address, as the other refusals do
			rep.Message = "<" + oneLine(to) + ">: " + rep.Message
		}
		return ss.refuse(reason, rep, err)
	}
	if !ep.Hosted() {
		if !ss.mayRelay() {
			// No open relay: without AUTH or a trusted network, only mail
			// for endpoints hosted here is accepted.
			ss.s.record(audit.Event{Actor: "client " + ss.w.ip.String(), Action: "smtp.relay_refused",
				Endpoint: ep.Address, Outcome: "refused", Detail: "relaying denied on " + ss.mode.String()})
			return ss.refuse("relay_denied", reply(550, 7, 1, "relaying denied: <"+oneLine(to)+
				"> is not hosted on this relay; deliver to the recipient's own relay, or submit on port 587 or 465 with AUTH"), nil)
		}
		ss.inbound = false
	}
	ss.rcpts = append(ss.rcpts, to)
	ss.dsn.addRcpt(opts, ss.account)
	ss.w.progress()
	return nil
}

func (ss *session) Reset() {
	ss.from, ss.rcpts, ss.dsn = "", nil, txnDSN{}
	ss.w.setTxn(false)
}

func (ss *session) Logout() error {
	ss.cancel()
	ss.w.setTxn(false)
	return nil
}

// AuthMechanisms offers PLAIN and LOGIN on submission over TLS only
// (RFC 4954 §4: no plaintext passwords without a protection layer).
func (ss *session) AuthMechanisms() []string {
	if ss.mode.submission() && ss.tls() {
		return []string{sasl.Plain, sasl.Login}
	}
	return nil
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if err := ss.gate(); err != nil {
		return nil, err
	}
	switch {
	case !ss.mode.submission():
		return nil, ss.refuse("auth_unavailable", reply(502, 5, 1, "AUTH is not offered on this port; use submission (587 or 465)"), nil)
	case !ss.tls():
		return nil, ss.refuse("tls_required", reply(538, 7, 11, "Must issue a STARTTLS command first"), nil) // RFC 4954 §6
	case ss.s.authFail.blocked(ss.w.ip):
		ss.s.record(audit.Event{Actor: "client " + ss.w.ip.String(), Action: "smtp.auth_refused",
			Outcome: "refused", Detail: "too many failed authentications"})
		return nil, ss.refuse("auth_rate_limited", reply(454, 7, 0, "too many failed authentications from your address, try again later"), nil)
	}
	switch mech {
	case sasl.Plain:
		return saslGuard{sasl.NewPlainServer(ss.authenticate)}, nil
	case sasl.Login:
		return saslGuard{&loginServer{auth: ss.authenticate}}, nil
	}
	return nil, ss.refuse("auth_mechanism", reply(504, 5, 4, "unrecognized authentication mechanism; use PLAIN or LOGIN"), nil) // RFC 4954 §6
}

// authenticate checks a username and password; neither is ever logged,
// only the username when it matched.
func (ss *session) authenticate(identity, user, pass string) error {
	if identity != "" && identity != user { // RFC 4616 §2: we authorise no one as another
		return ss.refuse("auth_failed", reply(535, 7, 8, "authentication credentials invalid; check the username and password"), nil)
	}
	ctx, cancel := context.WithTimeout(ss.ctx, lookupTimeout)
	acct, err := ss.s.cfg.Directory.Authenticate(ctx, user, pass)
	cancel()
	if err == nil && acct.Disabled {
		err = &directory.AccountDisabledError{Username: acct.Username, Reason: acct.DisabledReason}
	}
	var dis *directory.AccountDisabledError
	switch {
	case errors.As(err, &dis):
		// The right password: not a guess, so not counted towards the
		// failure limit (a disabled user's client retrying must not lock
		// out the rest of the practice behind the same address).
		ss.s.record(audit.Event{Actor: "client " + ss.w.ip.String(), Action: "smtp.auth_failed", Outcome: "refused",
			Detail: "account " + dis.Username + " disabled, AUTH on " + ss.mode.String()})
		return ss.refuse("auth_disabled", disabledReply(535, dis), nil)
	case errors.Is(err, directory.ErrAuthFailed):
		ss.s.authFail.add(ss.w.ip)
		ss.s.record(audit.Event{Actor: "client " + ss.w.ip.String(), Action: "smtp.auth_failed", Outcome: "refused",
			Detail: "AUTH failed on " + ss.mode.String()})
		return ss.refuse("auth_failed", reply(535, 7, 8, "authentication credentials invalid; check the username and password"), nil) // RFC 4954 §6
	case err != nil:
		ss.log.Error("authentication lookup failed", "err", err)
		return reply(454, 7, 0, "temporary authentication failure, quote "+ss.w.cid+" to the service desk")
	}
	ss.account = &acct
	ss.w.progress()
	ss.log = ss.log.With("user", acct.Username)
	ss.log.Info("authenticated")
	return nil
}

// saslGuard keeps go-sasl's own error text (which go-smtp would send as
// is) off the wire.
type saslGuard struct{ sasl.Server }

func (g saslGuard) Next(response []byte) ([]byte, bool, error) {
	ch, done, err := g.Server.Next(response)
	var se *smtp.SMTPError
	if err != nil && !errors.As(err, &se) {
		err = reply(501, 5, 2, "malformed AUTH response; send it base64-encoded") // RFC 4954 §4
	}
	return ch, done, err
}

// loginServer is the server side of the obsolete but widely used LOGIN
// mechanism (draft-murchison-sasl-login), which go-sasl has only as a client.
type loginServer struct {
	step int
	user string
	auth sasl.PlainAuthenticator
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		if response == nil { // no initial response
			l.step = 1
			return []byte("Username:"), false, nil
		}
		l.user, l.step = string(response), 2
		return []byte("Password:"), false, nil
	case 1:
		l.user, l.step = string(response), 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.auth("", l.user, string(response))
	}
	return nil, false, sasl.ErrUnexpectedClientResponse
}
