package directory

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrNotFound means no organisation, endpoint or account has the key asked for.
var ErrNotFound = errors.New("directory: not found")

// ErrAuthFailed means a username or password did not match an active account.
var ErrAuthFailed = errors.New("directory: authentication failed")

// NotVerifiedError says why a known endpoint may not receive clinical mail
// now. Reason is written for a person ("practice closed on 2024-03-31").
type NotVerifiedError struct {
	Address   string
	Status    EndpointStatus
	Reason    string
	Successor string // "<ODS> <address>" of a successor, if any
	// NoCertificate is set when the endpoint may receive clinical mail but
	// none of its S/MIME certificates can be used (Config.RequireSMIME):
	// mail cannot be sent to it safely now, and may be once a certificate
	// is renewed. RCPT refuses it all the same; the relay holds mail
	// already queued for it instead of failing it.
	NoCertificate bool
}

func (e *NotVerifiedError) Error() string {
	// Reason already says the status in words ("suspended: practice closed").
	s := fmt.Sprintf("directory: %s: %s", e.Address, e.Reason)
	if e.Reason == "" {
		s = fmt.Sprintf("directory: %s is %s", e.Address, e.Status)
	}
	if e.Successor != "" {
		s += "; successor: " + e.Successor
	}
	return s
}

// ErrConflict means a write would clash with what the directory holds: an
// address or fax number another endpoint already uses, or a change a
// retired endpoint no longer allows. The wrapping error names the clash.
var ErrConflict = errors.New("directory: conflict")

// ErrNoMailer means a verification challenge was asked for but Config.Mailer
// is nil, so no code can be sent.
var ErrNoMailer = errors.New("directory: no mailer configured for verification challenges")

// ErrNoChallenge means there is no outstanding challenge for the endpoint:
// none was started, it expired, or its attempts were used up. Start another.
var ErrNoChallenge = errors.New("directory: no outstanding verification challenge")

// ErrWrongCode means a challenge code did not match; the attempt was counted.
var ErrWrongCode = errors.New("directory: verification code does not match")

// ErrNoCode means a reply to a challenge carried no code of its own (a
// quoted copy of the challenge does not count); no attempt was counted.
var ErrNoCode = errors.New("directory: no verification code in the reply")

// ValidationError lists every field of an organisation, endpoint or account
// that was rejected, keyed by its JSON field name, each with a message for a
// person ("address": "domain part must contain a dot"). Nothing was written.
type ValidationError struct {
	Fields map[string]string
}

func (e *ValidationError) Error() string {
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString("directory: invalid")
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(';')
		}
		fmt.Fprintf(&b, " %s: %s", k, e.Fields[k])
	}
	return b.String()
}
