package timeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"nhsrelay/audit"
)

// Indexer keeps a Store up to date with an audit log and answers queries
// from it.
type Indexer struct {
	store   Store
	logPath string
	log     *slog.Logger

	mu sync.Mutex // one reader of the log at a time
}

// NewIndexer indexes the audit log at logPath into store. Nothing is read
// until CatchUp, Run or a query.
func NewIndexer(store Store, logPath string, logger *slog.Logger) *Indexer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Indexer{store: store, logPath: logPath, log: logger}
}

// maxBatch bounds how many events one Store.Add carries.
const maxBatch = 1000

// CatchUp reads the records appended since the last call and indexes
// them. If the log no longer holds the record the index stopped at (it was
// replaced), the index is rebuilt from the start.
func (ix *Indexer) CatchUp(ctx context.Context) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	pos, err := ix.store.Position(ctx)
	if err != nil {
		return err
	}
	for range 2 { // at most one rebuild
		err = ix.readFrom(ctx, pos)
		if !errors.Is(err, audit.ErrRewound) {
			return err
		}
		ix.log.Warn("audit log does not hold the record the timeline index stopped at; rebuilding the index", "seq", pos.Seq)
		if err := ix.store.Reset(ctx); err != nil {
			return err
		}
		pos = Position{}
	}
	return err
}

func (ix *Indexer) readFrom(ctx context.Context, pos Position) error {
	var batch []Indexed
	flush := func(last audit.Entry) error {
		if len(batch) == 0 {
			return nil
		}
		err := ix.store.Add(ctx, batch, Position{Seq: last.Seq, Offset: last.Offset, Hash: last.Hash})
		batch = batch[:0]
		return err
	}
	after := audit.Entry{Seq: pos.Seq, Offset: pos.Offset, Hash: pos.Hash}
	last, err := audit.ReadFrom(ix.logPath, after, func(en audit.Entry) error {
		ev := fromAudit(en)
		batch = append(batch, Indexed{Event: ev, Keys: Keys(ev)})
		if len(batch) >= maxBatch {
			return flush(en)
		}
		return nil
	})
	if ferr := flush(last); err == nil {
		err = ferr
	}
	if err != nil {
		return fmt.Errorf("timeline: index %s: %w", ix.logPath, err)
	}
	return nil
}

// Run catches up every interval until ctx ends; errors are logged.
func (ix *Indexer) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := ix.CatchUp(ctx); err != nil && ctx.Err() == nil {
			ix.log.Error("timeline index catch-up failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// queueIDPattern is relay.NewID's shape: 26 characters of Crockford base32.
var queueIDPattern = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)

// Find returns the timelines a query names, oldest first, after catching
// up with the log: query is a queue ID, a Message-ID (with or without
// angle brackets) or a recipient address. Events before since are left
// out of the search by recipient (zero: all).
func (ix *Indexer) Find(ctx context.Context, query string, since time.Time) ([]Message, error) {
	if err := ix.CatchUp(ctx); err != nil {
		return nil, err
	}
	query = strings.TrimSpace(query)
	var ids []string
	addIDs := func(evs []Event) {
		for _, e := range evs {
			if e.QueueID != "" && !slices.Contains(ids, e.QueueID) {
				ids = append(ids, e.QueueID)
			}
		}
	}
	if queueIDPattern.MatchString(query) {
		ids = append(ids, query)
	} else if strings.Contains(query, "@") {
		for _, key := range []string{MessageIDKey(query), RcptKey(strings.Trim(query, "<>"))} {
			evs, err := ix.store.Find(ctx, key, since)
			if err != nil {
				return nil, err
			}
			addIDs(evs)
		}
	}
	var out []Message
	for _, id := range ids {
		m, err := ix.message(ctx, id)
		if err != nil {
			return nil, err
		}
		if len(m.Events) > 0 {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b Message) int { return a.Accepted.Compare(b.Accepted) })
	return out, nil
}

// message assembles one queue ID's timeline: its own events and the
// reports about its Message-ID.
func (ix *Indexer) message(ctx context.Context, id string) (Message, error) {
	evs, err := ix.store.Find(ctx, QueueKey(id), time.Time{})
	if err != nil {
		return Message{}, err
	}
	for _, e := range evs {
		if mid := e.Fields["message_id"]; e.Action == "accepted" && mid != "" {
			about, err := ix.store.Find(ctx, AboutKey(mid), time.Time{})
			if err != nil {
				return Message{}, err
			}
			evs = append(evs, about...)
		}
	}
	slices.SortFunc(evs, func(a, b Event) int { return cmp.Compare(a.Seq, b.Seq) })
	return summarise(id, slices.CompactFunc(evs, func(a, b Event) bool { return a.Seq == b.Seq })), nil
}
