package directory

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"nhsrelay/audit"
)

// Limits on a reply to a challenge.
const (
	// MaxReplyText is how much of a reply's text ConfirmByReply reads; a
	// code is typed near the top.
	MaxReplyText = 64 << 10
	// maxReplyCodes bounds the code-shaped strings tried from one reply
	// (each costs a bcrypt comparison; together they are one attempt).
	maxReplyCodes = 5
)

// replyCodeRE is a code as newCode writes it: two groups of five from
// codeAlphabet, joined by "-", in either case. The classes are spelled out
// rather than (?i): Unicode case folding would match the Kelvin sign for K.
var replyCodeRE = regexp.MustCompile(`\b[A-HJ-NP-Za-hj-np-z2-9]{5}-[A-HJ-NP-Za-hj-np-z2-9]{5}\b`)

// ReplyCodes returns the distinct code-shaped strings (XXXXX-XXXXX) that
// the sender of a reply typed in text, upper-cased, at most five, from the
// first MaxReplyText bytes. Lines that quote the challenge do not count:
// lines starting with ">" (RFC 3676 §4.5 quoting), and an unquoted copy of
// the challenge's own "Verification code:" line (as Outlook replies carry
// it below "Original Message"). So a reply only saying "I did not expect
// this" never confirms an endpoint.
func ReplyCodes(text string) []string {
	if len(text) > MaxReplyText {
		text = text[:MaxReplyText]
	}
	var out []string
	for line := range strings.Lines(text) {
		l := strings.TrimLeft(line, " \t")
		if strings.HasPrefix(l, ">") || len(l) >= 18 && strings.EqualFold(l[:18], "verification code:") {
			continue
		}
		for _, m := range replyCodeRE.FindAllString(l, -1) {
			if m = strings.ToUpper(m); !slices.Contains(out, m) {
				out = append(out, m)
			}
			if len(out) == maxReplyCodes {
				return out
			}
		}
	}
	return out
}

// ConfirmByReply confirms a challenge by the endpoint owner's reply: from
// is the reply's sender, which must be the address the code was sent to
// (the endpoint's mailbox, or postmaster@domain for a whole-domain
// endpoint); text is the reply's plain text, of which the first
// MaxReplyText bytes are read for the code (ReplyCodes). A matching code
// verifies the endpoint, audited with the actor "reply from <from>".
//
// Errors: ErrNoChallenge if from has no outstanding challenge (it is
// logged, not audited: anyone may write to the challenge address), ErrNoCode
// if the reply carries no code of its own (no attempt counted),
// ErrWrongCode as ConfirmChallenge.
//
// The caller is the SMTP side: a recipient handler for
// Config.ChallengeFrom on the MX listener (wired by cmd). It passes the
// envelope sender only when it is also the header From, refuses null
// senders (bounces) and auto-submitted mail (RFC 3834 §5: an
// out-of-office reply is not a confirmation), and decodes the text/plain
// part (or the text of an HTML-only reply) into text.
func (d *Directory) ConfirmByReply(ctx context.Context, from, text string) error {
	addr, err := NormaliseAddress(from)
	if err != nil || !strings.Contains(addr, "@") {
		return fmt.Errorf("directory: confirm by reply from %q: not a mailbox: %w", clip(from), ErrNoChallenge)
	}
	ctx = audit.WithActor(ctx, "reply from "+strings.ToLower(addr))
	codes := ReplyCodes(text)

	d.wmu.Lock()
	defer d.wmu.Unlock()
	var ids []string // a domain's postmaster may also be a mailbox endpoint
	for id, c := range d.chals {
		if e, ok := d.eps[id]; ok && strings.EqualFold(c.Address, addr) && strings.EqualFold(challengeAddress(e), addr) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		d.log.Info("directory: reply without an outstanding challenge", "rcpt", addr)
		return fmt.Errorf("directory: confirm by reply from %s: %w", addr, ErrNoChallenge)
	}
	slices.Sort(ids)
	if len(codes) == 0 {
		for _, id := range ids {
			d.record(ctx, "endpoint.challenge.confirm", d.eps[id].Address, outcomeRefused, "reply from "+addr+" carried no code")
		}
		return fmt.Errorf("directory: confirm by reply from %s: %w", addr, ErrNoCode)
	}
	var errs []error
	for _, id := range ids {
		err := d.confirmLocked(ctx, id, codes, " by reply from "+strings.ToLower(addr))
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return errs[0]
}
