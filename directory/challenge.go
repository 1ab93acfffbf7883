package directory

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"nhsrelay/audit"
)

// codeAlphabet has no 0/O or 1/I, so codes survive being read aloud.
const codeAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// newCode returns a one-time code of 10 characters from codeAlphabet
// (50 bits), written as two groups of five: "K7QXM-2HVPA".
func newCode() string {
	var raw [10]byte
	rand.Read(raw[:]) // never fails (crypto/rand, Go 1.24+)
	out := make([]byte, 0, 11)
	for i, b := range raw {
		if i == 5 {
			out = append(out, '-')
		}
		out = append(out, codeAlphabet[int(b)%len(codeAlphabet)]) // 256 % 32 == 0: unbiased
	}
	return string(out)
}

// canonicalCode strips what people add when typing a code back.
func canonicalCode(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' || r == '\t' {
			return -1
		}
		if r >= 'a' && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, s)
}

// challengeAddress is where a challenge for e is mailed: the mailbox, or
// for a whole-domain endpoint its postmaster (RFC 5321 §4.5.1 requires every
// domain that accepts mail to have one).
func challengeAddress(e Endpoint) string {
	if strings.Contains(e.Address, "@") {
		return e.Address
	}
	return "postmaster@" + e.Address
}

// StartChallenge mails a one-time code to the endpoint's address through
// Config.Mailer. Only a bcrypt hash of the code is stored; it expires after
// Config.ChallengeTTL and allows Config.ChallengeAttempts wrong tries. A new
// challenge replaces any outstanding one.
func (d *Directory) StartChallenge(ctx context.Context, id string) error {
	if d.cfg.Mailer == nil {
		return fmt.Errorf("directory: start challenge: %w", ErrNoMailer)
	}
	d.wmu.Lock()
	e, ok := d.eps[id]
	if !ok {
		d.wmu.Unlock()
		return fmt.Errorf("directory: start challenge %q: %w", clip(id), ErrNotFound)
	}
	if err := d.canVerify(e); err != nil {
		d.wmu.Unlock()
		d.record(ctx, "endpoint.challenge", e.Address, outcomeRefused, err.Error())
		return err
	}
	code := newCode()
	hash, err := bcrypt.GenerateFromPassword([]byte(canonicalCode(code)), d.cfg.HashCost)
	if err != nil {
		d.wmu.Unlock()
		return fmt.Errorf("directory: start challenge %s: %w", e.Address, err)
	}
	now := d.cfg.Now()
	c := Challenge{EndpointID: e.ID, Address: challengeAddress(e), CodeHash: string(hash),
		Created: now, Expires: now.Add(d.cfg.ChallengeTTL), By: audit.ActorFrom(ctx)}
	err = d.commit(ctx, "start challenge "+e.Address, Batch{Challenges: []Challenge{c}})
	org := d.orgs[e.ODS]
	d.wmu.Unlock()
	if err != nil {
		d.record(ctx, "endpoint.challenge", e.Address, outcomeFailed, err.Error())
		return err
	}

	// Mail outside the write lock: the relay may take a while to accept it.
	msg := d.challengeMail(e, org, c, code)
	if err := d.cfg.Mailer.Send(ctx, d.cfg.ChallengeFrom, []string{c.Address}, bytes.NewReader(msg)); err != nil {
		d.wmu.Lock()
		if cur, ok := d.chals[e.ID]; ok && cur.CodeHash == c.CodeHash {
			if derr := d.commit(context.WithoutCancel(ctx), "withdraw challenge "+e.Address, Batch{DeleteChallenges: []string{e.ID}}); derr != nil {
				d.log.Error("directory: withdraw unsent challenge", "endpoint", e.Address, "err", derr)
			}
		}
		d.wmu.Unlock()
		d.record(ctx, "endpoint.challenge", e.Address, outcomeFailed, "sending the code to "+c.Address+" failed: "+err.Error())
		return fmt.Errorf("directory: start challenge %s: send code: %w", e.Address, err)
	}
	d.log.Info("directory: challenge sent", "endpoint", e.Address, "rcpt", c.Address)
	d.record(ctx, "endpoint.challenge.sent", e.Address, outcomeOK,
		fmt.Sprintf("code sent to %s, expires %s", c.Address, c.Expires.UTC().Format("2006-01-02 15:04 MST")))
	return nil
}

// challengeMail is the RFC 5322 message carrying the code. It is the
// relay's own mail, not clinical: the endpoint, its organisation, the code
// and how to confirm it, nothing else. A pending endpoint may have no
// valid S/MIME certificate yet, so the relay sends it over verified TLS
// without S/MIME (cmd's Mailer submits it as relay.Envelope.System).
func (d *Directory) challengeMail(e Endpoint, org Organisation, c Challenge, code string) []byte {
	var b bytes.Buffer
	domain := d.cfg.ChallengeFrom[strings.LastIndexByte(d.cfg.ChallengeFrom, '@')+1:]
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	hdr("From", "NHS relay directory <"+d.cfg.ChallengeFrom+">")
	hdr("To", "<"+c.Address+">")
	hdr("Subject", "Verification code for "+e.Address)
	hdr("Date", c.Created.Format("Mon, 02 Jan 2006 15:04:05 -0700")) // RFC 5322 §3.3
	hdr("Message-ID", "<"+strings.ToLower(rand.Text())+"@"+domain+">")
	hdr("Auto-Submitted", "auto-generated") // RFC 3834 §5: no auto-replies
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "8bit")
	b.WriteString("\r\n")
	name := org.Name
	if name == "" {
		name = "organisation"
	}
	fmt.Fprintf(&b, "%s has been added to the NHS relay directory as an endpoint of\r\n%s (ODS %s) for clinical mail.\r\n\r\n", e.Address, name, e.ODS)
	b.WriteString("If it belongs to your organisation, confirm it in one of two ways:\r\n\r\n")
	fmt.Fprintf(&b, "  - reply to this message from %s and type the code below in\r\n", c.Address)
	b.WriteString("    your reply (a quoted copy of this message does not count); or\r\n")
	b.WriteString("  - give the code to your relay administrator, who confirms it with\r\n")
	fmt.Fprintf(&b, "    nhsrelay directory verify -code CODE %s\r\n\r\n", e.ID)
	fmt.Fprintf(&b, "Verification code: %s\r\n\r\n", code)
	fmt.Fprintf(&b, "The code can be used once and expires on %s.\r\nAfter %d wrong attempts a new code must be requested.\r\n\r\n",
		c.Expires.UTC().Format("2 January 2006 at 15:04 MST"), d.cfg.ChallengeAttempts)
	b.WriteString("If you did not expect this message, do not reply and do not share the\r\ncode; tell your IT service desk.\r\n")
	return b.Bytes()
}

// ConfirmChallenge checks a code against the endpoint's outstanding
// challenge. A match verifies the endpoint (method challenge, expiring
// Config.ReverifyAfter from now). A wrong code gives an error wrapping
// ErrWrongCode and uses up an attempt; an expired or used-up challenge gives
// ErrNoChallenge.
func (d *Directory) ConfirmChallenge(ctx context.Context, id, code string) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if _, ok := d.eps[id]; !ok {
		return fmt.Errorf("directory: confirm challenge %q: %w", clip(id), ErrNotFound)
	}
	return d.confirmLocked(ctx, id, []string{code}, "")
}

// confirmLocked checks codes against endpoint id's outstanding challenge:
// if any matches, the endpoint is verified; if none does, one attempt is
// counted (several candidates from one reply are one attempt). how is added
// to the evidence (" by reply from ..."). The caller holds wmu.
func (d *Directory) confirmLocked(ctx context.Context, id string, codes []string, how string) error {
	e := d.eps[id]
	c, ok := d.chals[id]
	if !ok {
		d.record(ctx, "endpoint.challenge.confirm", e.Address, outcomeRefused, "no outstanding challenge")
		return fmt.Errorf("directory: confirm challenge for %s: %w", e.Address, ErrNoChallenge)
	}
	now := d.cfg.Now()
	if !now.Before(c.Expires) || c.Attempts >= d.cfg.ChallengeAttempts {
		why := "expired on " + c.Expires.UTC().Format("2006-01-02 15:04 MST")
		if c.Attempts >= d.cfg.ChallengeAttempts {
			why = "too many wrong codes"
		}
		if err := d.commit(ctx, "drop challenge "+e.Address, Batch{DeleteChallenges: []string{id}}); err != nil {
			return err
		}
		d.record(ctx, "endpoint.challenge.confirm", e.Address, outcomeRefused, "challenge "+why)
		return fmt.Errorf("directory: confirm challenge for %s: challenge %s; start a new one: %w", e.Address, why, ErrNoChallenge)
	}
	for _, code := range codes {
		if bcrypt.CompareHashAndPassword([]byte(c.CodeHash), []byte(canonicalCode(code))) == nil {
			return d.verify(ctx, id, MethodChallenge, "code sent to "+c.Address+" on "+day(c.Created)+" confirmed"+how)
		}
	}
	c.Attempts++
	b := Batch{Challenges: []Challenge{c}}
	left := d.cfg.ChallengeAttempts - c.Attempts
	if left <= 0 {
		b = Batch{DeleteChallenges: []string{id}}
	}
	if err := d.commit(ctx, "count challenge attempt "+e.Address, b); err != nil {
		return err
	}
	d.log.Warn("directory: wrong challenge code", "endpoint", e.Address, "attempts", c.Attempts)
	d.record(ctx, "endpoint.challenge.confirm", e.Address, outcomeRefused, fmt.Sprintf("wrong code%s, %d attempts left", how, left))
	if left <= 0 {
		return fmt.Errorf("directory: confirm challenge for %s: no attempts left; start a new challenge: %w", e.Address, ErrWrongCode)
	}
	return fmt.Errorf("directory: confirm challenge for %s: %d attempts left: %w", e.Address, left, ErrWrongCode)
}
