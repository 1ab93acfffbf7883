package ods

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxLineBytes bounds one line of an ODS file. A real epraccur row is about
// 250 bytes; a longer line is rejected (and skipped) rather than buffered.
const maxLineBytes = 8 << 10

// errLineTooLong marks a line skipped because it passed maxLineBytes.
var errLineTooLong = fmt.Errorf("line longer than %d bytes", maxLineBytes)

// lineReader yields the lines of r one at a time, numbered from 1, without
// their line terminator (LF or CRLF). A line longer than maxLineBytes is
// consumed whole and reported with errLineTooLong so that the next line is
// still read.
type lineReader struct {
	br   *bufio.Reader
	n    int
	line []byte
	err  error // errLineTooLong for the current line, or nil
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, maxLineBytes)}
}

// next reads the next line; it returns io.EOF after the last one, or a read
// error from the underlying reader.
func (lr *lineReader) next() error {
	lr.line, lr.err = lr.line[:0], nil
	tooLong := false
	for {
		chunk, err := lr.br.ReadSlice('\n')
		switch {
		case err == nil:
			if !tooLong {
				lr.line = append(lr.line, chunk...)
			}
			lr.n++
			lr.finish(tooLong)
			return nil
		case errors.Is(err, bufio.ErrBufferFull):
			tooLong = true // drain to the end of this line, keep nothing
		case errors.Is(err, io.EOF):
			if len(chunk) == 0 && !tooLong {
				return io.EOF
			}
			if !tooLong {
				lr.line = append(lr.line, chunk...)
			}
			lr.n++
			lr.finish(tooLong)
			return nil
		default:
			return fmt.Errorf("ods: read line %d: %w", lr.n+1, err)
		}
	}
}

func (lr *lineReader) finish(tooLong bool) {
	if tooLong {
		lr.line, lr.err = lr.line[:0], errLineTooLong
		return
	}
	lr.line = bytes.TrimSuffix(lr.line, []byte{'\n'})
	lr.line = bytes.TrimSuffix(lr.line, []byte{'\r'})
	if lr.n == 1 { // a UTF-8 byte order mark, as spreadsheet tools write
		lr.line = bytes.TrimPrefix(lr.line, []byte("\xef\xbb\xbf"))
	}
}

// parseRecord splits one line of comma-separated values into dst (reused)
// following RFC 4180 §2: a field is either bare, with no '"' in it, or
// enclosed in double quotes, where '""' stands for one '"' and commas are
// data. After a closing quote only a comma or the end of the line may come.
// Errors name the 1-based column so a person can find the fault.
func parseRecord(line string, dst []string) ([]string, error) {
	dst = dst[:0]
	col := 1
	for {
		if strings.HasPrefix(line, `"`) {
			// RFC 4180 §2 rule 5–7: quoted field.
			field, rest, err := quotedField(line[1:])
			if err != nil {
				return dst, fmt.Errorf("column %d: %w", col, err)
			}
			dst = append(dst, field)
			if rest == "" {
				return dst, nil
			}
			if rest[0] != ',' {
				return dst, fmt.Errorf("column %d: unexpected %q after closing quote (a quote inside a field must be doubled)", col, rest[0])
			}
			line = rest[1:]
		} else {
			i := strings.IndexAny(line, `,"`)
			if i >= 0 && line[i] == '"' {
				return dst, fmt.Errorf("column %d: quote inside an unquoted field", col)
			}
			if i < 0 {
				return append(dst, line), nil
			}
			dst = append(dst, line[:i])
			line = line[i+1:]
		}
		col++
	}
}

// quotedField reads the inside of a quoted field (s starts after the opening
// quote) and returns its value and what follows the closing quote.
func quotedField(s string) (field, rest string, err error) {
	i := strings.IndexByte(s, '"')
	if i < 0 {
		return "", "", errors.New("quote not closed before the end of the line")
	}
	if i+1 >= len(s) || s[i+1] != '"' { // common case: no doubled quotes
		return s[:i], s[i+1:], nil
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '"')
		if i < 0 {
			return "", "", errors.New("quote not closed before the end of the line")
		}
		b.WriteString(s[:i])
		if i+1 < len(s) && s[i+1] == '"' {
			b.WriteByte('"')
			s = s[i+2:]
			continue
		}
		return b.String(), s[i+1:], nil
	}
}

// formatRecord writes fields as one line the way ODS does: every field
// quoted, quotes doubled. parseRecord(formatRecord(f)) == f.
func formatRecord(fields []string) string {
	var b strings.Builder
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(strings.ReplaceAll(f, `"`, `""`))
		b.WriteByte('"')
	}
	return b.String()
}
