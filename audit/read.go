package audit

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
)

// Entry is one record read back from a log: its place in the chain and its
// event.
type Entry struct {
	Seq uint64
	Event
	// Offset is where the record's line starts in the file; Hash is the
	// hex SHA-256 of the line, which the next record carries as prev.
	Offset int64
	Hash   string
}

// ErrRewound means ReadFrom was asked to continue after a record that is
// no longer where it was (the file was replaced or cut): the reader should
// start again from the beginning.
var ErrRewound = errors.New("audit: log no longer holds the record read last")

// ReadFrom reads the complete records of the log at path that follow the
// record read last (after: its Offset and Hash, or the zero Entry for the
// start of the file), calling fn for each in order. A last line not yet
// complete (being written) is left for the next call. It returns the last
// record read (after itself if none). The log may be open for writing by
// another Log meanwhile: this is how the timeline indexer tails it.
func ReadFrom(path string, after Entry, fn func(Entry) error) (Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return after, fmt.Errorf("audit: read: %w", err)
	}
	defer f.Close()
	off := int64(0)
	if after.Hash != "" {
		line, err := lineAt(f, after.Offset)
		if err != nil || hexSum(line) != after.Hash {
			return after, ErrRewound
		}
		off = after.Offset + int64(len(line)) + 1
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return after, fmt.Errorf("audit: read: %w", err)
	}
	br := bufio.NewReaderSize(f, 64<<10)
	last := after
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return last, fmt.Errorf("audit: read: record at offset %d longer than %d bytes", off, maxLine)
		}
		if err != nil { // io.EOF: nothing more, or a line still being written
			return last, nil
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		rec, reason := decode(line)
		if reason != "" {
			return last, &BrokenError{Seq: rec.Seq, Reason: reason}
		}
		e := Entry{Seq: rec.Seq, Event: rec.Event, Offset: off, Hash: hexSum(line)}
		off += int64(len(line)) + 1
		if err := fn(e); err != nil {
			return last, err
		}
		last = e
	}
}

// lineAt returns the line starting at off, without its newline.
func lineAt(f *os.File, off int64) ([]byte, error) {
	buf := make([]byte, maxLine+1)
	n, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	i := bytes.IndexByte(buf[:n], '\n')
	if i < 0 {
		return nil, io.ErrUnexpectedEOF
	}
	return buf[:i], nil
}

func hexSum(line []byte) string {
	sum := sha256Sum(line)
	return hex.EncodeToString(sum[:])
}
