package smtpd

import (
	"context"
	"errors"
	"strings"

	"nhsrelay/audit"
	"nhsrelay/directory"
)

// noticeRcpt is RCPT for a notice account (issue 11): plain patient
// emails, sent as notice mail to addresses outside the NHS directory only.
// An address the directory knows, in any state, is refused: clinical
// endpoints get clinical mail, S/MIME sealed, from clinical accounts.
func (ss *session) noticeRcpt(to string) error {
	_, domain, ok := strings.Cut(to, "@")
	if !ok || !strings.Contains(domain, ".") || strings.HasPrefix(domain, "[") {
		return ss.refuse("rcpt_bad_address", reply(501, 1, 3, "<"+oneLine(to)+">: a notice goes to a patient's internet address, like name@example.org"), nil) // RFC 3463 X.1.3
	}
	ctx, cancel := context.WithTimeout(ss.ctx, lookupTimeout)
	_, err := ss.s.cfg.Directory.CheckRecipient(ctx, to)
	cancel()
	var nv *directory.NotVerifiedError
	switch {
	case errors.Is(err, directory.ErrNotFound):
	case err == nil || errors.As(err, &nv):
		ss.s.record(audit.Event{Actor: ss.account.Username, Action: "smtp.notice_rcpt_refused", Endpoint: to,
			Outcome: "refused", Detail: "notice account sending to an NHS directory endpoint"})
		return ss.refuse("notice_to_endpoint", reply(550, 7, 1, "<"+oneLine(to)+
			">: a notice account sends only to patients' own addresses outside the NHS directory; send clinical mail from a clinical account"), nil)
	default:
		return ss.refuse("rcpt_lookup_failed", ss.s.toReply(err, ss.w.cid), err)
	}
	ss.inbound = false
	ss.rcpts = append(ss.rcpts, to)
	ss.w.progress()
	return nil
}
