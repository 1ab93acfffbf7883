package smimepolicy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/mail"
	"strings"
)

// TraceHeader is the field the Opener adds to every message it puts in a
// hosted mailbox, and strips from whatever arrives, so a sender cannot
// forge it.
const TraceHeader = "X-NHSRelay-SMIME"

// readHeaderBlock reads the header section from br (up to and including
// the empty line that ends it, RFC 5322 §2.1) and returns it raw. complete
// is false if max bytes or the end of input came first; what was read is
// returned either way, so the caller can put it back in front of br.
func readHeaderBlock(br *bufio.Reader, max int) (raw []byte, complete bool, err error) {
	var buf bytes.Buffer
	atStart := true
	for buf.Len() < max {
		frag, err := br.ReadSlice('\n')
		if len(frag) > max-buf.Len() { // never more than max, whatever the line length
			frag = frag[:max-buf.Len()]
			buf.Write(frag)
			return buf.Bytes(), false, nil
		}
		buf.Write(frag)
		if atStart && isBlankLine(frag) && err == nil {
			return buf.Bytes(), true, nil
		}
		if len(frag) > 0 {
			atStart = frag[len(frag)-1] == '\n'
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
		case err == io.EOF:
			return buf.Bytes(), false, nil
		case err != nil:
			return buf.Bytes(), false, err
		}
	}
	return buf.Bytes(), false, nil
}

func isBlankLine(line []byte) bool {
	return string(line) == "\r\n" || string(line) == "\n"
}

// isField reports whether a header line (or its first fragment) starts the
// field name, case-insensitively, allowing white space before the colon
// (RFC 5322 §4.5.3 obsolete syntax, which readers still accept).
func isField(line []byte, name string) bool {
	if len(line) < len(name) || !strings.EqualFold(string(line[:len(name)]), name) {
		return false
	}
	rest := bytes.TrimLeft(line[len(name):], " \t")
	return len(rest) > 0 && rest[0] == ':'
}

// copyStripped copies a message from r to w without any field named name
// (and its folded continuation lines) in its header section; the body is
// copied unchanged. Lines of any length are handled in fragments, so
// memory stays bounded.
func copyStripped(w io.Writer, r io.Reader, name string) error {
	br := bufio.NewReaderSize(r, 64<<10)
	dropping, atStart := false, true
	for {
		frag, err := br.ReadSlice('\n')
		if len(frag) > 0 {
			if atStart && isBlankLine(frag) { // end of the header: copy the body as is
				if _, err := w.Write(frag); err != nil {
					return err
				}
				_, err := io.Copy(w, br)
				return err
			}
			if atStart && frag[0] != ' ' && frag[0] != '\t' { // RFC 5322 §2.2.3: WSP starts a folded line
				dropping = isField(frag, name)
			}
			if !dropping {
				if _, err := w.Write(frag); err != nil {
					return err
				}
			}
			atStart = frag[len(frag)-1] == '\n'
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
		case err == io.EOF:
			return nil
		case err != nil:
			return err
		}
	}
}

// headerFields returns the values of the named field in a raw header
// section, unfolded, in order.
func headerFields(raw []byte, name string) []string {
	var out []string
	cur := -1
	for line := range bytes.Lines(raw) {
		if isBlankLine(line) {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if cur >= 0 {
				out[cur] += " " + strings.TrimSpace(string(line))
			}
			continue
		}
		cur = -1
		if isField(line, name) {
			v := line[bytes.IndexByte(line, ':')+1:]
			out = append(out, strings.TrimSpace(string(v)))
			cur = len(out) - 1
		}
	}
	return out
}

// rawFields returns the named fields of a raw header section as they
// arrived, folding kept, each ending in CRLF.
func rawFields(raw []byte, name string) []byte {
	return filterFields(raw, func(line []byte) bool { return isField(line, name) })
}

// filterFields returns the fields of a raw header section whose first line
// keep accepts, with their folded continuation lines, each line ending in
// CRLF. It stops at the blank line that ends the section.
func filterFields(raw []byte, keep func(line []byte) bool) []byte {
	var out bytes.Buffer
	kept := false
	for line := range bytes.Lines(raw) {
		if isBlankLine(line) {
			break
		}
		if line[0] != ' ' && line[0] != '\t' {
			kept = keep(line)
		}
		if kept {
			out.Write(bytes.TrimRight(line, "\r\n"))
			out.WriteString("\r\n")
		}
	}
	return out.Bytes()
}

// fromAddresses returns the addresses in the From fields of a raw header
// section; ok is false if a From field does not parse or there is none.
func fromAddresses(raw []byte) (addrs []string, ok bool) {
	fields := headerFields(raw, "From")
	if len(fields) == 0 {
		return nil, false
	}
	for _, f := range fields {
		list, err := mail.ParseAddressList(f)
		if err != nil {
			return nil, false
		}
		for _, a := range list {
			addrs = append(addrs, a.Address)
		}
	}
	return addrs, len(addrs) > 0
}

// fieldName returns the name of the field a header line starts, or "" for
// a continuation line or a line without a colon.
func fieldName(line []byte) string {
	if len(line) == 0 || line[0] == ' ' || line[0] == '\t' {
		return ""
	}
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return ""
	}
	return string(bytes.TrimRight(line[:i], " \t"))
}

// isMIMEField reports whether name is a MIME entity field (RFC 2045 §3:
// MIME-Version and Content-*), which describes a body part, not a message.
func isMIMEField(name string) bool {
	n := strings.ToLower(name)
	return n == "mime-version" || strings.HasPrefix(n, "content-")
}

// isEntityHeader reports whether a raw header section holds only MIME
// entity fields (or none): a body part as Thunderbird and Outlook sign it,
// not an RFC 5322 message with its own From, Subject or Date.
func isEntityHeader(raw []byte) bool {
	for line := range bytes.Lines(raw) {
		if isBlankLine(line) {
			break
		}
		if name := fieldName(line); name != "" && !isMIMEField(name) {
			return false
		}
	}
	return true
}

// messageFields returns a raw header section without its MIME entity
// fields and without any field named drop, folding kept, each line ending
// in CRLF: the envelope-independent part of a message's header, to go in
// front of a different body entity.
func messageFields(raw []byte, drop string) []byte {
	return filterFields(raw, func(line []byte) bool {
		name := fieldName(line)
		return name != "" && !isMIMEField(name) && !strings.EqualFold(name, drop)
	})
}
