package dsn

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/textproto"
	"strings"
)

// MDN is a message disposition notification (RFC 8098), as a reader's
// mail client sends it back when the sender asked with
// Disposition-Notification-To. nhsrelay only reads them, to link them to
// the original message's timeline; it never sends one on a reader's
// behalf.
type MDN struct {
	ReportingUA       string // §3.2.1, "" if absent
	OriginalRecipient string // §3.2.3, "" if absent
	FinalRecipient    string // §3.2.4, the address after "type;"
	OriginalMessageID string // §3.2.5, with angle brackets
	Disposition       string // §3.2.6, e.g. "manual-action/MDN-sent-manually; displayed"
}

// DispositionType returns the disposition-type word of Disposition:
// "displayed", "deleted", "dispatched" or "processed" (§3.2.6.2).
func (m *MDN) DispositionType() string {
	_, t, _ := strings.Cut(m.Disposition, ";")
	t, _, _ = strings.Cut(t, "/") // RFC 3798's obsolete modifiers
	return strings.ToLower(strings.TrimSpace(t))
}

// ParseMDN reads a multipart/report; report-type=disposition-notification
// message (RFC 8098 §3) and returns its message/disposition-notification
// part's fields.
func ParseMDN(rd io.Reader) (*MDN, error) {
	_, mr, err := readReport(rd, "disposition-notification")
	if err != nil {
		return nil, err
	}
	for {
		p, err := mr.NextPart()
		if err != nil {
			return nil, fmt.Errorf("%w: no message/disposition-notification part", ErrMalformed)
		}
		pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if pt != "message/disposition-notification" {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(p, MaxHeaderBytes))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(data, "\r\n\r\n"...)))).ReadMIMEHeader()
		if err != nil && len(h) == 0 {
			return nil, fmt.Errorf("%w: disposition-notification: %v", ErrMalformed, err)
		}
		m := &MDN{ReportingUA: field(h.Get("Reporting-Ua")), OriginalRecipient: field(h.Get("Original-Recipient")),
			OriginalMessageID: field(h.Get("Original-Message-Id")), Disposition: field(h.Get("Disposition"))}
		if _, m.FinalRecipient, _ = typed(h.Get("Final-Recipient")); m.FinalRecipient == "" {
			return nil, fmt.Errorf("%w: Final-Recipient must be \"type; address\"", ErrMalformed)
		}
		if m.Disposition == "" || m.DispositionType() == "" {
			return nil, fmt.Errorf("%w: Disposition missing or without a type", ErrMalformed)
		}
		return m, nil
	}
}
