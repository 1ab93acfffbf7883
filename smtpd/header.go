package smtpd

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"

	"github.com/emersion/go-message/textproto"

	"nhsrelay/directory"
)

// headerReader holds back the header section (at most limit bytes, Postfix's
// header_size_limit), parses it with go-message/textproto, runs check, and
// then passes the message through unchanged and streaming.
type headerReader struct {
	r     io.Reader
	limit int
	check func(textproto.Header) error
	out   []byte // header bytes still to pass on
	done  bool
	eof   bool // the whole message was header
	err   error
}

func (h *headerReader) Read(p []byte) (int, error) {
	if !h.done {
		h.done = true
		if err := h.fill(); err != nil {
			return 0, err
		}
	}
	if len(h.out) > 0 {
		n := copy(p, h.out)
		h.out = h.out[n:]
		return n, nil
	}
	if h.eof {
		return 0, io.EOF
	}
	return h.r.Read(p)
}

func (h *headerReader) fill() error {
	buf := make([]byte, 0, 4096)
	end := -1
	for end < 0 {
		if end = headerEnd(buf); end >= 0 {
			break
		}
		if len(buf) > h.limit {
			h.err = fmt.Errorf("%w: over %d bytes", ErrHeaderTooLarge, h.limit)
			return h.err
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := h.r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			h.eof = true
			if end = headerEnd(buf); end < 0 {
				end = len(buf) // RFC 5322 §2.1: the body is optional
			}
			break
		}
		if err != nil {
			return err // a reader below has recorded it
		}
	}
	if end > h.limit {
		h.err = fmt.Errorf("%w: %d bytes, limit %d", ErrHeaderTooLarge, end, h.limit)
		return h.err
	}
	hdr, err := parseHeader(buf[:end])
	if err != nil {
		h.err = err
		return err
	}
	if h.check != nil {
		if err := h.check(hdr); err != nil {
			h.err = err
			return err
		}
	}
	h.out = buf
	return nil
}

// headerEnd returns the length of the header section including the empty
// line that ends it, or -1 if buf does not hold it all yet.
func headerEnd(buf []byte) int {
	if bytes.HasPrefix(buf, []byte("\r\n")) {
		return 2
	}
	if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
		return i + 4
	}
	return -1
}

func parseHeader(b []byte) (textproto.Header, error) {
	if !bytes.HasSuffix(b, []byte("\r\n\r\n")) && !bytes.Equal(b, []byte("\r\n")) {
		b = append(bytes.TrimSuffix(b, []byte("\r\n")), "\r\n\r\n"...)
	}
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(b)))
	if err != nil {
		return h, fmt.Errorf("%w: %w", ErrHeaderMalformed, err)
	}
	return h, nil
}

// checkFrom applies "a sender may only use the From addresses its account
// owns" to the header: every address in From: (RFC 5322 §3.6.2 allows
// several) and the Sender:, if any.
func checkFrom(h textproto.Header, acct directory.Account) error {
	for _, field := range []string{"From", "Sender"} {
		vals := h.Values(field)
		switch {
		case len(vals) == 0 && field == "From":
			return &senderError{problem: "is missing; add one that names an address your account owns (RFC 5322 §3.6.2)"}
		case len(vals) == 0:
			continue
		case len(vals) > 1:
			return &senderError{problem: "appears more than once (RFC 5322 §3.6); give it once"}
		}
		addrs, err := parseAddressList(vals[0])
		if err != nil {
			return &senderError{problem: "cannot be read; correct it to name an address your account owns"}
		}
		for _, a := range addrs {
			if !acct.Owns(a) {
				return &senderError{addr: a, problem: "is not one your account may send as; use an address your account owns"}
			}
		}
	}
	return nil
}

// parseAddressList returns the addr-specs of an RFC 5322 address list, at
// least one. Display names in any charset are allowed (we only need the
// addresses, so unknown charsets are not decoded, not refused).
func parseAddressList(v string) ([]string, error) {
	if len(v) > 8192 {
		return nil, fmt.Errorf("address list too long")
	}
	p := mail.AddressParser{WordDecoder: &mime.WordDecoder{
		CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil }}}
	list, err := p.ParseList(v)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(list))
	for _, a := range list {
		if !strings.Contains(a.Address, "@") || strings.ContainsAny(a.Address, "\r\n") {
			return nil, fmt.Errorf("not an address: %q", a.Address)
		}
		out = append(out, a.Address)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no address")
	}
	return out, nil
}

// received is our trace header (RFC 5321 §4.4), with the protocol keyword
// of RFC 3848 (ESMTP, ESMTPS, ESMTPA, ESMTPSA). It names no TLS version or
// cipher and no account: only what the next hop and a person tracing need.
// The id is the connection id, which the log links to the queue id.
//
// QUIRK: go-smtp does not tell a session whether HELO or EHLO was used, so
// HELO clients are recorded as ESMTP rather than SMTP.
func (ss *session) received() string {
	proto := "ESMTP"
	if ss.tls() {
		proto += "S"
	}
	if ss.account != nil {
		proto += "A"
	}
	ip := ss.w.ip
	lit := "[" + ip.String() + "]"
	if ip.Is6() {
		lit = "[IPv6:" + ip.String() + "]" // RFC 5321 §4.1.3
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Received: from %s (%s)\r\n\tby %s (nhsrelay) with %s id %s",
		heloText(ss.c.Hostname()), lit, ss.s.cfg.Hostname, proto, ss.w.cid)
	if len(ss.rcpts) == 1 && safeForHeader(ss.rcpts[0]) {
		fmt.Fprintf(&b, "\r\n\tfor <%s>", ss.rcpts[0])
	}
	fmt.Fprintf(&b, ";\r\n\t%s\r\n", ss.s.cfg.Now().Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	return b.String()
}

// heloText keeps the client's EHLO argument to what a domain or address
// literal may contain, so it cannot forge header structure.
func heloText(h string) string {
	if h == "" || len(h) > 255 {
		return "unknown"
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".-:[]_", c) >= 0) {
			return "unknown"
		}
	}
	return h
}

func safeForHeader(addr string) bool {
	if len(addr) > 254 {
		return false
	}
	for i := 0; i < len(addr); i++ {
		if c := addr[i]; c <= ' ' || c > '~' || c == '<' || c == '>' || c == ';' {
			return false
		}
	}
	return true
}
