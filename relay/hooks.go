package relay

import (
	"context"
	"errors"
	"io"

	"nhsrelay/directory"
	"nhsrelay/relay/queue"
)

// ErrQuarantine, wrapped by an Opener's error, means the message must not
// reach the mailbox (not encrypted, tampered, unknown signer, wrong
// organisation, cannot be decrypted). The Opener has already kept it in
// quarantine and told the endpoint's owner before returning; the relay
// fails the recipient and the sender gets a DSN carrying the error's words.
var ErrQuarantine = errors.New("relay: message quarantined")

// Opener prepares a message for a hosted endpoint's mailbox (S/MIME,
// issue 5): for mail that arrived over MX (m.Inbound) it decrypts and
// verifies it; for mail submitted on this relay it marks how the sender was
// authenticated. It reads the spooled body and writes what the mailbox
// gets to w. An error wrapping ErrQuarantine fails the recipient (see
// ErrQuarantine); any other error defers it.
//
// When an Opener is configured, hosted recipients go through it and never
// through the Sealer.
type Opener interface {
	Open(ctx context.Context, m queue.Message, ep directory.Endpoint, body Body, w io.Writer) error
}

// Body is a spooled message handed to an Opener: Read streams it once;
// Reopen returns it afresh from its start, so that an Opener can keep what
// arrived (quarantine) after a failed Open consumed the stream.
type Body interface {
	io.Reader
	Reopen() (io.ReadCloser, error)
}

// spooledBody is the Body of message id.
type spooledBody struct {
	io.Reader
	r  *Relay
	id string
}

func (b spooledBody) Reopen() (io.ReadCloser, error) { return b.r.spool.Open(b.id) }

// RecipientChecker is an optional ability of a Sealer. CheckRecipient is
// asked for each due recipient before recipients are grouped by next hop;
// an error wrapping ErrHold holds that recipient alone, so one recipient
// without a valid certificate does not hold the others that share its
// next hop. Seal is still called for the rest and may still hold them.
type RecipientChecker interface {
	CheckRecipient(ctx context.Context, m queue.Message, ep directory.Endpoint) error
}

// sealed reports whether ep's copy goes through the Sealer: every
// recipient when a Sealer is set, except hosted ones when an Opener is.
func (r *Relay) sealed(ep directory.Endpoint) bool {
	return r.cfg.Sealer != nil && !(ep.Hosted() && r.cfg.Opener != nil)
}

// precheck asks a RecipientChecker Sealer about one recipient.
func (r *Relay) precheck(ctx context.Context, m queue.Message, ep directory.Endpoint) error {
	c, ok := r.cfg.Sealer.(RecipientChecker)
	if !ok || !r.sealed(ep) || isNotice(m) {
		return nil
	}
	return c.CheckRecipient(ctx, m, ep)
}

// openForMailbox is openBody for a hosted recipient: through the Opener
// when one is configured. An Opener that refuses before writing anything
// (ErrQuarantine) is reported here, before the Maildir is touched.
func (r *Relay) openForMailbox(ctx context.Context, m queue.Message, ep directory.Endpoint) (io.ReadCloser, error) {
	if r.cfg.Opener == nil {
		return r.openBody(ctx, m, []directory.Endpoint{ep})
	}
	return r.spoolThrough(m, func(f io.Reader, w io.Writer) error {
		return r.cfg.Opener.Open(ctx, m, ep, spooledBody{Reader: f, r: r, id: m.ID}, w)
	})
}
