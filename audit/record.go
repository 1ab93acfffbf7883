package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// File format: one record per line, UTF-8 JSON, in this canonical form:
//
//	{"seq":N,"prev":"<hex>",<the Event's fields>,"hash":"<hex>"}\n
//
// seq counts from 1 with no gaps. prev is the hex SHA-256 of the previous
// line (without its newline), or 64 zeros for the first record. hash is
// the hex SHA-256 of the line's own bytes before `,"hash":` with a closing
// `}` appended — the record as it would be without hash — so an edited
// record is named at its own line, not only at the next one. Verify
// re-encodes each record and requires the same bytes, so nothing can be
// added to a record (no unknown keys, no reformatting) without detection.
//
// A chain proves order and integrity from the first record up to the last;
// it cannot show that records were cut from the end. Operators who need
// that anchor the last hash elsewhere (Verify's count and Head).

// genesis is prev for the first record.
var genesis = [sha256.Size]byte{}

// maxLine bounds a record's length: Record refuses longer events and Verify
// rejects longer lines, so neither buffers without limit.
const maxLine = 64 << 10

// record is a line's fields in order: seq and prev, the Event, then hash.
type record struct {
	Seq  uint64 `json:"seq"`
	Prev string `json:"prev"`
	Event
}

type hashedRecord struct {
	record
	Hash string `json:"hash"`
}

// encode returns the canonical line for r, without newline. Invalid UTF-8
// becomes U+FFFD first, as encoding/json would write it, so that a
// record re-encodes to the same bytes after a round trip.
func encode(r record) ([]byte, error) {
	for _, s := range []*string{&r.Actor, &r.Action, &r.QueueID, &r.Endpoint, &r.Outcome, &r.Detail, &r.Prev} {
		*s = strings.ToValidUTF8(*s, "\uFFFD")
	}
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	line := make([]byte, 0, len(body)+len(`,"hash":""`)+2*sha256.Size)
	line = append(line, body[:len(body)-1]...)
	line = append(line, `,"hash":"`...)
	line = hex.AppendEncode(line, sum[:])
	line = append(line, `"}`...)
	return line, nil
}

// decode parses and checks one line on its own (not its place in the
// chain). It returns the record and a reason in words if the line is not
// a well-formed, self-consistent record; seq is what the line claims,
// when it can be read.
func decode(line []byte) (r record, reason string) {
	var h hashedRecord
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		var seqOnly struct {
			Seq uint64 `json:"seq"`
		}
		json.Unmarshal(line, &seqOnly)
		return record{Seq: seqOnly.Seq}, "not a valid record: " + shortErr(err)
	}
	if dec.More() {
		return h.record, "extra data after the record"
	}
	want, err := encode(h.record)
	if err != nil {
		return h.record, "cannot re-encode: " + shortErr(err)
	}
	if !bytes.Equal(want, line) {
		// Same fields, different bytes: tell a changed field (hash no longer
		// matches) from added or reformatted text.
		body, _ := json.Marshal(h.record)
		sum := sha256.Sum256(body)
		if h.Hash != hex.EncodeToString(sum[:]) {
			return h.record, "record was changed: its contents do not match its hash"
		}
		return h.record, "record is not in canonical form (added or reformatted text)"
	}
	return h.record, ""
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return s
}

// BrokenError names a record at which Verify found the chain broken.
type BrokenError struct {
	Line   int    // 1-based line number in the file
	Seq    uint64 // the sequence number the record claims, 0 if unreadable
	Reason string // in words, for the operator
	// Resumed is the line of the new segment Open started after finding
	// the break, 0 if the chain does not resume after it.
	Resumed int
}

func (e *BrokenError) Error() string {
	s := fmt.Sprintf("audit: chain broken at line %d (seq %d): %s", e.Line, e.Seq, e.Reason)
	if e.Resumed > 0 {
		s += fmt.Sprintf("; a new segment, started when the log was next opened, continues from line %d", e.Resumed)
	}
	return s
}

// ErrClosed means Record was called after Close, or after a write or fsync
// failed (the log refuses to continue a chain it cannot vouch for).
var ErrClosed = errors.New("audit: log closed")

func sha256Sum(b []byte) [sha256.Size]byte { return sha256.Sum256(b) }
