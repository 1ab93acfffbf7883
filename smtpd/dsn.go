package smtpd

import (
	"slices"

	"github.com/emersion/go-smtp"

	"nhsrelay/directory"
	"nhsrelay/relay"
)

// Account receipt defaults (directory.Account.Receipts, issue 12): most
// GP and hospital mail clients never set NOTIFY, so an account can ask for
// a success receipt on every message, or never have one.
const (
	receiptsAlways    = "always"
	receiptsOnRequest = "on-request" // the default, also ""
	receiptsNever     = "never"
)

// txnDSN is a transaction's DSN request (RFC 3461), which go-smtp parses
// once the server enables DSN: RET and ENVID from MAIL (§4.3, §4.4),
// NOTIFY and ORCPT from each RCPT (§4.1, §4.2), in RCPT order.
type txnDSN struct {
	ret, envID string
	rcpts      []relay.RcptDSN
}

func newTxnDSN(opts *smtp.MailOptions) txnDSN {
	if opts == nil {
		return txnDSN{}
	}
	return txnDSN{ret: string(opts.Return), envID: opts.EnvelopeID}
}

// addRcpt records one accepted recipient's request, with the sending
// account's default applied: "always" adds SUCCESS when the client gave
// no NOTIFY (an explicit NOTIFY, NEVER included, is the sender's word);
// "never" takes SUCCESS out of any NOTIFY.
func (d *txnDSN) addRcpt(opts *smtp.RcptOptions, acct *directory.Account) {
	var rd relay.RcptDSN
	if opts != nil {
		for _, n := range opts.Notify {
			rd.Notify = append(rd.Notify, string(n))
		}
		if opts.OriginalRecipient != "" {
			rd.ORcpt = string(opts.OriginalRecipientType) + ";" + opts.OriginalRecipient
		}
	}
	if acct != nil {
		switch acct.Receipts {
		case receiptsAlways:
			if len(rd.Notify) == 0 {
				rd.Notify = []string{"SUCCESS", "FAILURE", "DELAY"}
			}
		case receiptsOnRequest, "":
		case receiptsNever:
			if slices.Contains(rd.Notify, "SUCCESS") {
				rd.Notify = slices.DeleteFunc(slices.Clone(rd.Notify), func(n string) bool { return n == "SUCCESS" })
				if len(rd.Notify) == 0 {
					rd.Notify = []string{"NEVER"}
				}
			}
		}
	}
	d.rcpts = append(d.rcpts, rd)
}
