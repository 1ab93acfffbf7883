package smtpd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/emersion/go-smtp"

	"nhsrelay/directory"
)

// reply builds what the client sees; the enhanced-code class is the first digit
// of the basic code (RFC 3463 §2), so the two can never disagree.
func reply(code, subject, detail int, text string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code,
		EnhancedCode: smtp.EnhancedCode{code / 100, subject, detail}, Message: text}
}

// Errors our DATA readers return; toReply turns them into replies. They
// carry the package name because the queue wraps them into its own errors.
var (
	// ErrBareLineEnding: the message has a CR or LF that is not part of a
	// CRLF pair (RFC 5321 §2.3.8), the raw material of SMTP smuggling.
	ErrBareLineEnding = errors.New("smtpd: bare CR or LF in message")
	// ErrHeaderTooLarge: the header section is longer than MaxHeaderBytes.
	ErrHeaderTooLarge = errors.New("smtpd: message header too large")
	// ErrHeaderMalformed: the header section cannot be parsed (RFC 5322 §2.2).
	ErrHeaderMalformed = errors.New("smtpd: message header malformed")
	// ErrDataTimeout: DATA stalled past DataTimeout or fell below MinDataRate.
	ErrDataTimeout = errors.New("smtpd: data timeout or too slow")
	// ErrProtocol: the client broke the SMTP dialogue (pipelining where it
	// may not); the connection is being closed.
	ErrProtocol = errors.New("smtpd: protocol violation")
)

// senderError says the From: header names an address the account does not own.
type senderError struct {
	addr    string // "" when the header is missing or unreadable
	problem string
}

func (e *senderError) Error() string {
	return fmt.Sprintf("smtpd: From: header %s: %s", e.addr, e.problem)
}

// toReply maps an error from below to a reply. err's own text never reaches
// the wire, nor does an *smtp.SMTPError from below other than go-smtp's own
// size limit; the caller logs err under cid, which the client can quote.
func (s *Server) toReply(err error, cid string) *smtp.SMTPError {
	var (
		nv  *directory.NotVerifiedError
		se  *smtp.SMTPError
		snd *senderError
	)
	switch {
	case errors.As(err, &se) && se == smtp.ErrDataTooLarge:
		return reply(552, 3, 4, fmt.Sprintf("message exceeds the size limit of %d bytes; send it smaller, or in several messages", s.cfg.MaxMessageBytes)) // RFC 3463 §3.4
	case errors.Is(err, directory.ErrNotFound):
		return reply(550, 1, 1, "no such NHS endpoint in the directory; check the address with the recipient") // RFC 3463 §3.2
	case errors.As(err, &nv):
		return reply(550, 7, 1, notVerifiedText(nv)) // §3.8
	case errors.Is(err, ErrBareLineEnding):
		return reply(554, 6, 0, "message contains a bare LF/CR; SMTP requires CRLF line endings (RFC 5321 §2.3.8): fix the sending program's line endings")
	case errors.Is(err, ErrHeaderTooLarge):
		return reply(552, 3, 4, fmt.Sprintf("message header exceeds the limit of %d bytes; remove or shorten header fields", s.limits().MaxHeaderBytes))
	case errors.Is(err, ErrHeaderMalformed):
		return reply(554, 6, 0, "message header is malformed (RFC 5322 §2.2); correct the header fields")
	case errors.Is(err, smtp.ErrTooLongLine):
		return reply(554, 6, 0, "message has a line longer than the limit (RFC 5321 §4.5.3.1.6); wrap long lines or encode the body (quoted-printable or base64)")
	case errors.As(err, &snd) && snd.addr == "":
		return reply(550, 7, 1, "From: header "+snd.problem)
	case errors.As(err, &snd):
		return reply(553, 7, 1, "From: header address <"+snd.addr+"> "+snd.problem)
	case errors.Is(err, ErrDataTimeout), errors.Is(err, os.ErrDeadlineExceeded):
		return reply(421, 4, 2, s.cfg.Hostname+" timeout or data rate too slow, closing connection; try again")
	case errors.Is(err, ErrProtocol):
		return protocolReply("")
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		// RFC 3463 §3.4 X.3.1 "mail system full"; 452 is RFC 5321's
		// "insufficient system storage". The client keeps the message and
		// tries again; nothing of it was acknowledged.
		return reply(452, 3, 1, "insufficient system storage on this relay; the message was not accepted, try again later")
	case errors.Is(err, context.DeadlineExceeded):
		return reply(451, 4, 5, "relay busy, try again later") // §3.5, congestion
	default:
		return reply(451, 3, 0, "local error, quote "+cid+" to the service desk")
	}
}

// authRequired is the 530 text for mail without AUTH (RFC 4954 §6).
const authRequired = "Authentication required; log in (AUTH) with your nhsrelay account first"

// protocolReply answers a client that broke the dialogue: what it did,
// and what to do instead.
func protocolReply(what string) *smtp.SMTPError {
	if what == "" {
		what = "commands sent out of turn"
	}
	return reply(554, 5, 1, "protocol error: "+what+"; wait for each reply before sending more (RFC 2920 §3.1), then reconnect")
}

func notVerifiedText(nv *directory.NotVerifiedError) string {
	// The directory's Reason already names the state ("not yet verified",
	// "suspended: practice closed on 2024-03-31").
	s := "<" + oneLine(nv.Address) + ">: "
	if nv.Reason != "" {
		s += oneLine(nv.Reason)
	} else {
		s += "endpoint " + string(nv.Status) + ", not accepting clinical mail"
	}
	if nv.Successor != "" {
		s += "; successor: " + oneLine(nv.Successor)
	}
	return s
}

// oneLine keeps text from the directory to printable ASCII on one line, so
// it cannot break the reply (go-smtp splits replies on "\n").
func oneLine(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s) && len(b) < 200; i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			c = ' '
		}
		b = append(b, c)
	}
	return string(b)
}
