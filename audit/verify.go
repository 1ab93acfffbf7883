package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
)

// Verify checks the whole chain in the file at path and returns how many
// records it holds. The first problem is returned as a *BrokenError naming
// its line: a record changed (its hash no longer matches), removed,
// inserted or moved (seq or prev out of step), or a last line cut short.
// Other errors are I/O errors. An empty file is a valid, empty chain.
func Verify(path string) (records int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("audit: verify: %w", err)
	}
	defer f.Close()
	n, _, err := verify(f)
	return n, err
}

// verify checks the chain read from r; head is the hash the next record's
// prev must carry.
func verify(r io.Reader) (records int, head [sha256.Size]byte, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head = genesis
	for lineNo := 1; ; lineNo++ {
		line, err := readLine(br)
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return records, head, nil
		}
		broken := func(seq uint64, reason string) (int, [sha256.Size]byte, error) {
			return records, head, &BrokenError{Line: lineNo, Seq: seq, Reason: reason}
		}
		switch {
		case errors.Is(err, errLineTooLong):
			return broken(0, fmt.Sprintf("line longer than %d bytes", maxLine))
		case errors.Is(err, io.EOF):
			return broken(0, "last line is cut short (no newline): a torn or truncated write")
		case err != nil:
			return records, head, fmt.Errorf("audit: verify: read line %d: %w", lineNo, err)
		}
		rec, reason := decode(line)
		if reason != "" {
			return broken(rec.Seq, reason)
		}
		if want := uint64(records) + 1; rec.Seq != want {
			return broken(rec.Seq, fmt.Sprintf("seq %d where %d was due: a record was removed, inserted or moved", rec.Seq, want))
		}
		if rec.Prev != hex.EncodeToString(head[:]) {
			return broken(rec.Seq, "prev does not match the line before: that line was changed, or records were removed, inserted or moved")
		}
		head = sha256.Sum256(line)
		records++
	}
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line without its newline. At the end of input
// it returns io.EOF, with any bytes that had no newline.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(line)+len(frag) > maxLine+1 {
			return nil, errLineTooLong
		}
		line = append(line, frag...)
		switch {
		case err == nil:
			return bytes.TrimSuffix(line, []byte("\n")), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return line, err
		}
	}
}
