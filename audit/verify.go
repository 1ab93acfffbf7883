package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"slices"
	"strconv"
)

// segmentAction is the action of the record Open writes after a break in
// the chain: it starts a new segment (seq 1 again) whose prev is the hash
// of the line before it, whatever that line is, so the new chain is linked
// to the file as Open found it and the break stays where it was.
const segmentAction = "audit.segment"

// Verify checks the whole chain in the file at path and returns how many
// records verify. A problem is returned as a *BrokenError naming its
// line: a record changed (its hash no longer matches), removed, inserted
// or moved (seq or prev out of step), or a last line cut short. After a
// break, the lines up to a new segment that Open started (an
// audit.segment record linked to the line before it) are outside any
// chain and not counted; the break's Resumed names the segment's line and
// checking goes on from there. Each break is returned, joined, first
// first (errors.As finds the first). Other errors are I/O errors. An empty
// file is a valid, empty chain.
func Verify(path string) (records int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("audit: verify: %w", err)
	}
	defer f.Close()
	st, err := verify(f, false)
	if err != nil {
		return st.records, err
	}
	return st.records, st.err()
}

// chain is what verify learnt of a file.
type chain struct {
	records  int
	seq      uint64            // the last good record's seq in the current segment
	head     [sha256.Size]byte // SHA-256 of the last good record's line: the next prev
	lastLine [sha256.Size]byte // SHA-256 of the last line read, good or not
	lines    int
	breaks   []*BrokenError
	broken   bool // the last break has no new segment after it
}

func (c *chain) err() error {
	errs := make([]error, len(c.breaks))
	for i, b := range c.breaks {
		errs[i] = b
	}
	return errors.Join(errs...)
}

// verify reads the chain from r; only an I/O error is returned as err.
//
// fast (for Open, which runs at every start) checks each record's seq,
// prev and own hash by their place in the line instead of decoding it
// (fastRecord), about twenty times quicker; a line that fails that is
// decoded for the reason, and so are the line before it and the last
// line. It finds what the full decode finds, at the same lines: a change
// to a record changes its hash, which the next record's prev covers, so
// a record that passes fast but would fail decoding is always decoded
// (FuzzVerify compares the two). Verify, the operator's check, decodes
// every line.
func verify(r io.Reader, fast bool) (c chain, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	c.head = genesis
	sum := sha256.New()
	var last []byte  // the last line accepted fast, decoded at the end
	var before chain // the state before it
	checkLast := func() {
		if last == nil {
			return
		}
		if _, reason := decode(last); reason != "" {
			lines, lastLine := c.lines, c.lastLine
			c = before
			c.lines, c.lastLine = lines, lastLine
			c.breaks = append(c.breaks, &BrokenError{Line: before.lines + 1, Seq: c.seq + 1, Reason: reason})
			c.broken = true
		}
	}
	for lineNo := 1; ; lineNo++ {
		line, tooLong, err := readLine(br, sum)
		if errors.Is(err, io.EOF) && len(line) == 0 && !tooLong {
			checkLast()
			return c, nil
		}
		if fast && err == nil && !tooLong && !c.broken {
			var lineSum [sha256.Size]byte
			sum.Sum(lineSum[:0])
			if fastRecord(line, c.seq+1, c.head) {
				before = c
				before.breaks = slices.Clone(c.breaks)
				last = append(last[:0], line...)
				c.lines, c.lastLine = lineNo, lineSum
				c.seq, c.head = c.seq+1, lineSum
				c.records++
				continue
			}
		}
		checkLast()
		last = nil
		c.lines = lineNo
		var lineSum [sha256.Size]byte
		sum.Sum(lineSum[:0])
		prevLine := c.lastLine
		c.lastLine = lineSum
		brk := func(seq uint64, reason string) {
			if !c.broken {
				c.breaks = append(c.breaks, &BrokenError{Line: lineNo, Seq: seq, Reason: reason})
				c.broken = true
			}
		}
		switch {
		case err != nil && !errors.Is(err, io.EOF):
			return c, fmt.Errorf("audit: verify: read line %d: %w", lineNo, err)
		case tooLong:
			brk(0, fmt.Sprintf("line longer than %d bytes", maxLine))
			continue
		case errors.Is(err, io.EOF):
			brk(0, "last line is cut short (no newline): a torn or truncated write")
			return c, nil
		}
		rec, reason := decode(line)
		if c.broken {
			// Only a new segment linked to the line before it ends a break.
			if reason == "" && rec.Action == segmentAction && rec.Seq == 1 && rec.Prev == hex.EncodeToString(prevLine[:]) {
				c.breaks[len(c.breaks)-1].Resumed = lineNo
				c.broken = false
				c.seq, c.head = 1, lineSum
				c.records++
			}
			continue
		}
		switch {
		case reason != "":
			brk(rec.Seq, reason)
		case rec.Seq != c.seq+1:
			brk(rec.Seq, fmt.Sprintf("seq %d where %d was due: a record was removed, inserted or moved", rec.Seq, c.seq+1))
		case rec.Prev != hex.EncodeToString(c.head[:]):
			brk(rec.Seq, "prev does not match the line before: that line was changed, or records were removed, inserted or moved")
		default:
			c.seq, c.head = rec.Seq, lineSum
			c.records++
		}
	}
}

// readLine returns the next line without its newline, and leaves the
// SHA-256 of that line (without newline) in sum. A line longer than
// maxLine is read to its end but not returned (tooLong). At the end of
// input it returns io.EOF, with any bytes that had no newline.
func readLine(br *bufio.Reader, sum hash.Hash) (line []byte, tooLong bool, err error) {
	sum.Reset()
	for {
		frag, err := br.ReadSlice('\n')
		body := frag
		if err == nil {
			body = frag[:len(frag)-1]
		}
		sum.Write(body)
		if !tooLong && len(line)+len(body) > maxLine {
			tooLong, line = true, nil
		}
		if !tooLong {
			line = append(line, body...)
		}
		switch {
		case err == nil:
			return line, tooLong, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return line, tooLong, err
		}
	}
}

// fastRecord reports whether line is record seq, chained to head, with a
// hash that matches its bytes: it starts {"seq":<seq>,"prev":"<head>",
// and ends ,"hash":"<SHA-256 of the line up to there, with "}" after>"}.
func fastRecord(line []byte, seq uint64, head [sha256.Size]byte) bool {
	var pre [96]byte
	p := append(pre[:0], `{"seq":`...)
	p = strconv.AppendUint(p, seq, 10)
	p = append(p, `,"prev":"`...)
	p = hex.AppendEncode(p, head[:])
	p = append(p, `",`...)
	const tail = len(`,"hash":"`) + 2*sha256.Size + len(`"}`)
	if len(line) < len(p)+tail || !bytes.HasPrefix(line, p) {
		return false
	}
	body := line[:len(line)-tail]
	suffix := line[len(line)-tail:]
	if !bytes.HasPrefix(suffix, []byte(`,"hash":"`)) || !bytes.HasSuffix(suffix, []byte(`"}`)) {
		return false
	}
	h := sha256.New()
	h.Write(body)
	h.Write([]byte("}"))
	var want [2 * sha256.Size]byte
	hex.Encode(want[:], h.Sum(nil))
	return bytes.Equal(suffix[len(`,"hash":"`):len(`,"hash":"`)+2*sha256.Size], want[:])
}
