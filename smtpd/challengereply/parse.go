package challengereply

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/emersion/go-message/textproto"

	"nhsrelay/directory"
)

// Limits on what parse reads of a reply. A reply's own text is near the
// top; past these we stop looking, and a code not found is ErrNoCode.
const (
	// maxScan bounds the bytes parse reads (headers and bodies). It also
	// bounds the memory go-message's textproto spends on part headers,
	// which it reads without a limit of its own.
	maxScan = 512 << 10
	// maxHTML bounds the HTML read for an HTML-only reply; markup is
	// several times the text it carries.
	maxHTML = 4 * directory.MaxReplyText
	// maxDepth and maxParts bound the MIME tree walked.
	maxDepth = 8
	maxParts = 64
)

// errUnreadable means the reply's MIME structure could not be read.
var errUnreadable = errors.New("challengereply: unreadable MIME structure")

// reply is what the handler needs from a message.
type reply struct {
	from      []string // addr-specs of the From: header field; nil if absent, repeated or unreadable
	auto      string   // why the message is automatic ("Auto-Submitted: auto-replied"), or ""
	text      string   // the sender's text, at most directory.MaxReplyText bytes
	encrypted bool     // the text was S/MIME or PGP encrypted or opaque-signed: unreadable here
}

// parse reads a reply's header and its first text/plain part (or, failing
// one, its first text/html part as text), decoding the transfer encoding
// and UTF-16/32 charsets. It reads at most maxScan bytes of r; the caller
// drains the rest. The error wraps errUnreadable, or is r's.
//
// QUIRK: other charsets are not converted. A code is ASCII, and every
// charset mail clients send it in other than UTF-16/32 (UTF-8, ISO-8859-*,
// Windows-125x, ISO-2022-*, UTF-7) writes ASCII letters, digits and '-' as
// ASCII; text in a charset that does not (EBCDIC) yields no code, which
// ConfirmByReply answers with ErrNoCode and counts no attempt.
func parse(r io.Reader) (reply, error) {
	lr := &io.LimitedReader{R: r, N: maxScan}
	br := bufio.NewReader(lr)
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return reply{}, fmt.Errorf("%w: header: %w", errUnreadable, err)
	}
	rep := reply{from: headerFrom(h), auto: autoMarker(h)}
	w := walker{}
	err = w.walk(h, br, 0)
	if lr.N <= 0 { // stopped at maxScan: what we found so far stands
		err = nil
	}
	switch {
	case w.plain != nil:
		rep.text = decodeCharset(w.plainCharset, w.plain)
	case w.html != nil:
		rep.text = htmlText(decodeCharset(w.htmlCharset, w.html))
	}
	if len(rep.text) > directory.MaxReplyText {
		rep.text = rep.text[:directory.MaxReplyText]
	}
	rep.encrypted = w.encrypted && rep.text == ""
	if err != nil && rep.text == "" {
		return rep, err
	}
	return rep, nil
}

// walker walks a MIME tree in order, keeping the first text/plain and
// text/html bodies that are not attachments.
type walker struct {
	parts                     int
	plain, html               []byte
	plainCharset, htmlCharset string
	encrypted                 bool
	stop                      bool // a bound was reached: look no further
}

func (w *walker) walk(h textproto.Header, body io.Reader, depth int) error {
	if w.plain != nil || w.stop {
		return nil
	}
	if w.parts++; w.parts > maxParts || depth > maxDepth {
		w.stop = true // not an error: the text was not where a reply has it
		return nil
	}
	mt, params := mediaType(h)
	if disp, _, _ := mime.ParseMediaType(h.Get("Content-Disposition")); disp == "attachment" {
		return nil
	}
	switch {
	case mt == "multipart/signed":
		// RFC 1847 §2.1: the first part is the content, the second the signature.
		return w.children(body, params["boundary"], depth, 1)
	case mt == "multipart/encrypted", mt == "application/pkcs7-mime", mt == "application/x-pkcs7-mime":
		w.encrypted = true // RFC 1847 §2.2, RFC 8551 §3.2
		return nil
	case strings.HasPrefix(mt, "multipart/"):
		return w.children(body, params["boundary"], depth, maxParts)
	case mt == "text/plain" && w.plain == nil:
		b, err := readDecoded(h, body, directory.MaxReplyText)
		if err != nil {
			return err
		}
		w.plain, w.plainCharset = b, params["charset"]
	case mt == "text/html" && w.html == nil:
		b, err := readDecoded(h, body, maxHTML)
		if err != nil {
			return err
		}
		w.html, w.htmlCharset = b, params["charset"]
	}
	// Anything else (images, message/rfc822: a forwarded message is not
	// the sender's text) is skipped.
	return nil
}

// children walks at most max parts of a multipart body.
func (w *walker) children(body io.Reader, boundary string, depth, max int) error {
	if boundary == "" {
		return fmt.Errorf("%w: multipart without a boundary", errUnreadable) // RFC 2046 §5.1.1
	}
	mr := textproto.NewMultipartReader(body, boundary)
	for range max {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %w", errUnreadable, err)
		}
		if err := w.walk(p.Header, p, depth+1); err != nil {
			return err
		}
		if w.plain != nil || w.stop {
			return nil
		}
	}
	return nil
}

// mediaType returns the lower-case media type and its parameters;
// RFC 2045 §5.2: none, or one that cannot be parsed, is text/plain in
// US-ASCII.
func mediaType(h textproto.Header) (string, map[string]string) {
	v := h.Get("Content-Type")
	if v == "" {
		return "text/plain", map[string]string{}
	}
	mt, params, err := mime.ParseMediaType(v)
	if err != nil && mt == "" {
		return "text/plain", map[string]string{}
	}
	if params == nil {
		params = map[string]string{}
	}
	return mt, params
}

// readDecoded reads up to limit bytes of body after its transfer encoding
// (RFC 2045 §6). A decoding error keeps what was decoded before it: a
// prefix of the text can only miss a code, never make one up.
func readDecoded(h textproto.Header, body io.Reader, limit int) ([]byte, error) {
	src := &readErr{r: body}
	var r io.Reader
	switch cte := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))); cte {
	case "", "7bit", "8bit", "binary":
		r = src
	case "quoted-printable":
		r = quotedprintable.NewReader(src)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, &dropSpace{r: src})
	default:
		return []byte{}, nil // RFC 2045 §6.4: unknown encoding, treat as opaque data
	}
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)))
	if err != nil && src.err != nil {
		return b, fmt.Errorf("%w: read part: %w", errUnreadable, src.err)
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

// readErr remembers the error of the reader below, so a decoder's own
// error can be told from it.
type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// dropSpace removes the spaces and tabs base64 bodies sometimes carry
// (encoding/base64 skips only CR and LF).
type dropSpace struct{ r io.Reader }

func (d *dropSpace) Read(p []byte) (int, error) {
	for {
		n, err := d.r.Read(p)
		j := 0
		for _, c := range p[:n] {
			if c != ' ' && c != '\t' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

// decodeCharset converts UTF-16 and UTF-32 text to UTF-8 (RFC 2781:
// without a byte order mark, big-endian); other charsets pass as they are
// (see parse's QUIRK).
func decodeCharset(label string, b []byte) string {
	switch strings.ToLower(strings.Trim(strings.TrimSpace(label), `"`)) {
	case "utf-16", "ucs-2":
		if bytes.HasPrefix(b, []byte{0xff, 0xfe}) {
			return utf16Text(b[2:], false)
		}
		return utf16Text(bytes.TrimPrefix(b, []byte{0xfe, 0xff}), true)
	case "utf-16be", "unicodefffe":
		return utf16Text(b, true)
	case "utf-16le", "unicode": // "unicode" is Windows' name for UTF-16LE
		return utf16Text(b, false)
	case "utf-32":
		if bytes.HasPrefix(b, []byte{0xff, 0xfe, 0, 0}) {
			return utf32Text(b[4:], false)
		}
		return utf32Text(bytes.TrimPrefix(b, []byte{0, 0, 0xfe, 0xff}), true)
	case "utf-32be":
		return utf32Text(b, true)
	case "utf-32le":
		return utf32Text(b, false)
	}
	return string(b)
}

func utf16Text(b []byte, be bool) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		if be {
			u = append(u, uint16(b[i])<<8|uint16(b[i+1]))
		} else {
			u = append(u, uint16(b[i+1])<<8|uint16(b[i]))
		}
	}
	return string(utf16.Decode(u))
}

func utf32Text(b []byte, be bool) string {
	var sb strings.Builder
	for i := 0; i+3 < len(b); i += 4 {
		var r uint32
		if be {
			r = uint32(b[i])<<24 | uint32(b[i+1])<<16 | uint32(b[i+2])<<8 | uint32(b[i+3])
		} else {
			r = uint32(b[i+3])<<24 | uint32(b[i+2])<<16 | uint32(b[i+1])<<8 | uint32(b[i])
		}
		if r > utf8.MaxRune {
			r = utf8.RuneError
		}
		sb.WriteRune(rune(r))
	}
	return sb.String()
}

// headerFrom returns the addresses of the one From: field (RFC 5322
// §3.6.2), or nil if it is missing, repeated or unreadable.
func headerFrom(h textproto.Header) []string {
	vals := h.Values("From")
	if len(vals) != 1 || len(vals[0]) > 8192 {
		return nil
	}
	// Display names in any charset are fine: only the addresses matter.
	p := mail.AddressParser{WordDecoder: &mime.WordDecoder{
		CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil }}}
	list, err := p.ParseList(vals[0])
	if err != nil || len(list) == 0 {
		return nil
	}
	out := make([]string, 0, len(list))
	for _, a := range list {
		out = append(out, a.Address)
	}
	return out
}

// autoMarker says why a message is automatic, or "" if it is a person's.
// RFC 3834 §5: any Auto-Submitted value but "no" marks mail a program
// sent (out-of-office replies are "auto-replied"); an empty or unreadable
// one counts as automatic.
//
// QUIRK: some auto-responders mark replies only with the older
// "Precedence: auto_reply/bulk/junk/list" or X-Autoreply / X-Autorespond
// (RFC 3834 §3.1.8 lists them as what responders look for); those count
// as automatic too.
func autoMarker(h textproto.Header) string {
	for _, v := range h.Values("Auto-Submitted") {
		if k := keyword(v); k != "no" {
			return "Auto-Submitted: " + k
		}
	}
	for _, v := range h.Values("Precedence") {
		switch k := keyword(v); k {
		case "auto_reply", "bulk", "junk", "list":
			return "Precedence: " + k
		}
	}
	for _, f := range []string{"X-Autoreply", "X-Autorespond"} {
		for _, v := range h.Values(f) {
			if k := keyword(v); k != "no" && k != "" {
				return f + ": " + k
			}
		}
	}
	return ""
}

// keyword returns a structured field's first token in lower case: comments
// (RFC 5322 §3.2.2, nested) removed, cut at the first ';' (RFC 3834 §5's
// optional parameters), at most 40 bytes of printable ASCII.
func keyword(v string) string {
	var b strings.Builder
	depth := 0
	for i := 0; i < len(v) && b.Len() < 40; i++ {
		switch c := v[i]; {
		case c == '\\' && depth > 0:
			i++
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth > 0:
		case c == ';':
			return strings.ToLower(strings.TrimSpace(b.String()))
		case c > '~' || c < ' ' && c != '\t':
			b.WriteByte('?') // header fields are ASCII (RFC 5322 §2.2)
		default:
			b.WriteByte(c)
		}
	}
	return strings.ToLower(strings.TrimSpace(b.String()))
}
