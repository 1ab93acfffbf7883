package smtpd

import (
	"context"
	"errors"

	"github.com/emersion/go-smtp"

	"nhsrelay/audit"
	"nhsrelay/directory"
)

// disabledReply answers AUTH (after the right password) and MAIL/RCPT of a
// session that logged in before an administrator disabled the account.
// X.7.13 is "User Account Disabled" in the IANA SMTP enhanced status code
// registry (RFC 5248); the basic code stays RFC 4954's 535 for AUTH and
// 550 for a refused command.
func disabledReply(code int, dis *directory.AccountDisabledError) *smtp.SMTPError {
	text := "account " + oneLine(dis.Username) + " is disabled"
	if dis.Reason != "" {
		text += ": " + oneLine(dis.Reason)
	}
	return reply(code, 7, 13, text+"; contact your relay administrator")
}

// refreshAccount reads the logged-in account again, so that a disable, a
// delete or a change of owned addresses made after AUTH applies from the
// session's next MAIL or RCPT. Without a login it does nothing.
func (ss *session) refreshAccount() error {
	if ss.account == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ss.ctx, lookupTimeout)
	a, err := ss.s.cfg.Directory.ActiveAccount(ctx, ss.account.Username)
	cancel()
	var dis *directory.AccountDisabledError
	switch {
	case errors.As(err, &dis):
		ss.s.record(audit.Event{Actor: ss.account.Username, Action: "smtp.sender_refused",
			Outcome: "refused", Detail: "account disabled after login"})
		return ss.refuse("account_disabled", disabledReply(550, dis), nil)
	case errors.Is(err, directory.ErrNotFound):
		ss.s.record(audit.Event{Actor: ss.account.Username, Action: "smtp.sender_refused",
			Outcome: "refused", Detail: "account deleted after login"})
		return ss.refuse("account_deleted", reply(550, 7, 1, "account "+oneLine(ss.account.Username)+
			" no longer exists; log in with a current account"), nil)
	case err != nil:
		ss.log.Error("account lookup failed", "err", err)
		return reply(451, 4, 0, "temporary account lookup failure, quote "+ss.w.cid+" to the service desk")
	}
	ss.account = &a
	return nil
}
