package challengereply

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"nhsrelay/directory"
	"nhsrelay/relay"
	"nhsrelay/smtpd"
)

// DefaultTimeout bounds one ConfirmByReply call.
const DefaultTimeout = 30 * time.Second

// Confirmer confirms a challenge from a reply; *directory.Directory
// satisfies it. Its errors wrap directory.ErrNoChallenge,
// directory.ErrNoCode or directory.ErrWrongCode, or are failures.
type Confirmer interface {
	ConfirmByReply(ctx context.Context, from, text string) error
}

// Config is what New needs.
type Config struct {
	// Address is where challenges come from and replies go: the
	// directory's ChallengeFrom (cmd: directory.challenge_from). Required.
	Address   string
	Directory Confirmer     // required
	Timeout   time.Duration // bounds ConfirmByReply; 0: DefaultTimeout
}

// Handler is the smtpd.RecipientHandler for Config.Address.
type Handler struct {
	addr    string
	dir     Confirmer
	timeout time.Duration
}

var _ smtpd.RecipientHandler = (*Handler)(nil)

// New checks cfg and returns the handler.
func New(cfg Config) (*Handler, error) {
	var errs []error
	addr, err := directory.NormaliseAddress(cfg.Address)
	if err != nil || !strings.Contains(addr, "@") {
		errs = append(errs, fmt.Errorf("challengereply: Address %q: not a mail address", cfg.Address))
	}
	if cfg.Directory == nil {
		errs = append(errs, errors.New("challengereply: Directory: required"))
	}
	if cfg.Timeout < 0 {
		errs = append(errs, errors.New("challengereply: Timeout: negative"))
	} else if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &Handler{addr: addr, dir: cfg.Directory, timeout: cfg.Timeout}, nil
}

// Accepts reports whether addr is the challenge address; the comparison
// ignores case (postmaster, the default, is case-insensitive by RFC 5321
// §4.5.1; NHS mailbox names are too).
func (h *Handler) Accepts(addr string) bool {
	a, err := directory.NormaliseAddress(addr)
	return err == nil && strings.EqualFold(a, h.addr)
}

// Handle reads the whole reply, then confirms the sender's challenge with
// the code the sender typed. It refuses, before asking the directory:
// the null sender (a bounce; RFC 5321 §4.5.5), automatic mail (RFC 3834
// §5: an out-of-office reply is no confirmation), and a From: header that
// is not the envelope sender alone, so the mailbox the code was sent to is
// the one that answered in both places. The directory audits what it
// decides; smtpd logs every refusal with its cause.
func (h *Handler) Handle(ctx context.Context, env relay.Envelope, body io.Reader) (string, error) {
	rep, perr := parse(body)
	// smtpd's contract: read to EOF before acting, so that a message smtpd
	// refuses (bare LF, too large) never confirms anything.
	if _, err := io.Copy(io.Discard, body); err != nil {
		return "", fmt.Errorf("challengereply: read reply: %w", err)
	}
	if env.From == "" {
		return "", refuse(550, 7, 1, "a message with a null sender (a bounce or notice) cannot confirm a verification; reply in person from the endpoint's mailbox", nil)
	}
	if perr != nil {
		return "", refuse(550, 6, 0, "the reply's MIME structure cannot be read; reply in plain text and type the code from the challenge", perr)
	}
	if rep.auto != "" {
		return "", refuse(550, 7, 1, "an automatic reply ("+rep.auto+") cannot confirm a verification; reply in person and type the code from the challenge", nil)
	}
	if len(rep.from) != 1 || !sameMailbox(rep.from[0], env.From) {
		return "", refuse(550, 7, 1, "the From: header must be the envelope sender <"+env.From+"> alone; reply from the endpoint's own mailbox", nil)
	}

	cctx, cancel := context.WithTimeout(ctx, h.timeout)
	err := h.dir.ConfirmByReply(cctx, env.From, rep.text)
	cancel()
	switch {
	case err == nil:
		return "verification confirmed", nil
	case errors.Is(err, directory.ErrNoChallenge):
		return "", refuse(550, 7, 1, "no verification is pending for <"+env.From+">; reply only to a current challenge, or ask your administrator for one", err)
	case errors.Is(err, directory.ErrNoCode) && rep.encrypted:
		return "", refuse(550, 6, 0, "no verification code found: the reply is encrypted and cannot be read here; reply without encryption and type the code from the challenge", err)
	case errors.Is(err, directory.ErrNoCode):
		return "", refuse(550, 6, 0, "no verification code found: type the code from the challenge into your reply", err)
	case errors.Is(err, directory.ErrWrongCode):
		return "", refuse(550, 7, 1, "the code does not match; ask your administrator for a new challenge", err)
	}
	return "", fmt.Errorf("challengereply: confirm reply from %s: %w", env.From, err) // smtpd: 451, logged
}

// refuse is the reply smtpd sends (RFC 3463: 5.7.1 not authorised, 5.6.0
// content the relay cannot use).
func refuse(code, subject, detail int, text string, cause error) error {
	return &smtpd.HandlerError{Code: code, Subject: subject, Detail: detail, Text: text, Err: cause}
}

// sameMailbox reports whether a and b name the same mailbox, ignoring
// case in either part (as ConfirmByReply matches the challenge address).
func sameMailbox(a, b string) bool {
	na, err1 := directory.NormaliseAddress(a)
	nb, err2 := directory.NormaliseAddress(b)
	return err1 == nil && err2 == nil && strings.Contains(na, "@") && strings.EqualFold(na, nb)
}
