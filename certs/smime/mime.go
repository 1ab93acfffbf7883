package smime

import (
	"bufio"
	"bytes"
	"errors"
	"net/textproto"
)

// splitHeader parses the header block at the start of entity and returns it
// with the offset of the body (after the empty line).
func splitHeader(entity []byte) (textproto.MIMEHeader, int, error) {
	end, at := -1, 0
	switch {
	case bytes.HasPrefix(entity, []byte("\r\n")):
		end, at = 0, 2
	case bytes.HasPrefix(entity, []byte("\n")):
		end, at = 0, 1
	default:
		i := bytes.Index(entity, []byte("\n\r\n"))
		j := bytes.Index(entity, []byte("\n\n"))
		switch {
		case i >= 0 && (j < 0 || i < j):
			end, at = i+1, i+3
		case j >= 0:
			end, at = j+1, j+2
		}
	}
	if end < 0 {
		return nil, 0, errors.New("no end of header")
	}
	if end > maxHeaderBytes {
		return nil, 0, errors.New("header too long")
	}
	raw := make([]byte, 0, end+2)
	raw = append(append(raw, entity[:end]...), "\r\n"...)
	h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw))).ReadMIMEHeader()
	if err != nil {
		return nil, 0, err
	}
	return h, at, nil
}

// splitSigned splits a multipart/signed body (RFC 1847 §2.1) into the
// exact bytes of the first part, headers included — what was signed — and
// the second part. RFC 2046 §5.1.1: a delimiter is "--" boundary at the
// start of a line, and the line break before it belongs to the delimiter.
func splitSigned(body []byte, boundary string) (content, sig []byte, err error) {
	if boundary == "" || len(boundary) > 200 {
		return nil, nil, errors.New("no usable boundary")
	}
	delim := []byte("--" + boundary)
	_, e0, _, ok := nextDelimiter(body, 0, delim)
	if !ok {
		return nil, nil, errors.New("no first boundary")
	}
	s1, e1, closing, ok := nextDelimiter(body, e0, delim)
	if !ok || closing {
		return nil, nil, errors.New("no signature part")
	}
	s2, _, _, ok := nextDelimiter(body, e1, delim)
	if !ok {
		return nil, nil, errors.New("no closing boundary")
	}
	return body[e0:trimBreak(body, e0, s1)], body[e1:trimBreak(body, e1, s2)], nil
}

// trimBreak returns the end of the part that the delimiter line at s ends:
// s minus the CRLF (or LF) before it, never below start.
func trimBreak(b []byte, start, s int) int {
	end := s
	if end > start && b[end-1] == '\n' {
		end--
		if end > start && b[end-1] == '\r' {
			end--
		}
	}
	return end
}

// nextDelimiter finds the next delimiter line at or after from and returns
// where it starts, where the next line starts, and whether it is the close
// delimiter.
func nextDelimiter(b []byte, from int, delim []byte) (start, next int, closing, ok bool) {
	pos := from
	for pos <= len(b) {
		i := bytes.Index(b[pos:], delim)
		if i < 0 {
			return 0, 0, false, false
		}
		s := pos + i
		pos = s + 1
		if s > 0 && b[s-1] != '\n' {
			continue
		}
		rest := b[s+len(delim):]
		cl := bytes.HasPrefix(rest, []byte("--"))
		if cl {
			rest = rest[2:]
		}
		k := 0
		for k < len(rest) && (rest[k] == ' ' || rest[k] == '\t') { // transport padding
			k++
		}
		switch {
		case k == len(rest):
			return s, len(b), cl, true
		case rest[k] == '\n':
			return s, len(b) - len(rest) + k + 1, cl, true
		case rest[k] == '\r' && k+1 < len(rest) && rest[k+1] == '\n':
			return s, len(b) - len(rest) + k + 2, cl, true
		}
	}
	return 0, 0, false, false
}
