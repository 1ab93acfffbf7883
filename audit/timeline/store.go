package timeline

import (
	"context"
	"errors"
	"strings"
	"time"

	"nhsrelay/audit"
)

// ErrClosed means the store was closed.
var ErrClosed = errors.New("timeline: store closed")

// Event is one audit record as the timeline keeps it: the Detail split
// into its words and its fields.
type Event struct {
	Seq      uint64       `json:"seq"`
	Time     time.Time    `json:"time"`
	Actor    string       `json:"actor"`
	Action   string       `json:"action"`
	QueueID  string       `json:"queue_id,omitempty"`
	Endpoint string       `json:"endpoint,omitempty"`
	Outcome  string       `json:"outcome"`
	Words    string       `json:"words,omitempty"`
	Fields   audit.Fields `json:"fields,omitempty"`
}

// Indexed is an Event and the keys it is found by (see Keys).
type Indexed struct {
	Event Event
	Keys  []string
}

// Position is how far into the audit log the index has read: the last
// record's seq, offset and line hash (audit.Entry without its event).
type Position struct {
	Seq    uint64 `json:"seq"`
	Offset int64  `json:"offset"`
	Hash   string `json:"hash"`
}

// Store keeps the index. Add is atomic and durable: the entries and the
// new position together, or neither; an entry whose Seq is already stored
// is not stored twice.
type Store interface {
	Add(ctx context.Context, entries []Indexed, pos Position) error
	// Find returns the events filed under key, in Seq order, none before
	// since (zero: all).
	Find(ctx context.Context, key string, since time.Time) ([]Event, error)
	Position(ctx context.Context) (Position, error) // zero before the first Add
	Reset(ctx context.Context) error                // empty the index, for a rebuild
	Close() error
}

// Key kinds: a queue ID, a Message-ID (with its angle brackets), a
// recipient address, and the Message-ID a report is about.
func QueueKey(id string) string      { return "q:" + id }
func MessageIDKey(mid string) string { return "m:" + normMessageID(mid) }
func RcptKey(addr string) string     { return "r:" + strings.ToLower(strings.TrimSpace(addr)) }
func AboutKey(mid string) string     { return "l:" + normMessageID(mid) }

func normMessageID(mid string) string {
	mid = strings.TrimSpace(mid)
	if mid != "" && !strings.HasPrefix(mid, "<") {
		mid = "<" + mid + ">"
	}
	return mid
}

// Keys are the keys an event is filed under.
func Keys(e Event) []string {
	var keys []string
	add := func(k string) {
		for _, have := range keys {
			if have == k {
				return
			}
		}
		keys = append(keys, k)
	}
	if e.QueueID != "" {
		add(QueueKey(e.QueueID))
	}
	if mid := e.Fields["message_id"]; mid != "" {
		add(MessageIDKey(mid))
	}
	if mid := e.Fields["orig_message_id"]; mid != "" {
		add(AboutKey(mid))
	}
	for _, name := range []string{"rcpt", "rcpts"} {
		for a := range strings.SplitSeq(e.Fields[name], ",") {
			if strings.Contains(a, "@") {
				add(RcptKey(a))
			}
		}
	}
	if e.Action == "smtp.accepted" && strings.Contains(e.Endpoint, "@") {
		add(RcptKey(e.Endpoint))
	}
	return keys
}

// fromAudit is the timeline's form of a record.
func fromAudit(en audit.Entry) Event {
	words, f := audit.SplitFields(en.Detail)
	return Event{Seq: en.Seq, Time: en.Time, Actor: en.Actor, Action: en.Action, QueueID: en.QueueID,
		Endpoint: en.Endpoint, Outcome: en.Outcome, Words: words, Fields: f}
}
