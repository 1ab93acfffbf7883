package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// Log is an append-only, hash-chained audit log file. It implements
// Recorder and is safe for concurrent use; concurrent Records share fsyncs
// (group commit), but none returns before its own record is durable.
type Log struct {
	f   *os.File
	now func() time.Time

	mu      sync.Mutex
	cond    *sync.Cond
	seq     uint64            // last record's seq
	head    [sha256.Size]byte // SHA-256 of the last line
	written uint64            // records written to the file
	synced  uint64            // records known durable
	syncing bool
	failed  error // sticky: ErrClosed, or the write/fsync error that stopped the log
}

var _ Recorder = (*Log)(nil)

// Open opens or creates (mode 0600) the log at path for appending and
// continues the chain from its last record. now supplies times for events
// that have none (nil means time.Now). Only one Log may have a file open:
// a second Open, in this process or another, fails rather than fork the
// chain. A last line left incomplete by a crash during a write (never
// acknowledged: Record had not returned) is cut off; a broken last record
// is an error, for the operator to examine with Verify.
func Open(path string, now func() time.Time) (*Log, error) {
	if now == nil {
		now = time.Now
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: open: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: open %s: in use by another writer: %w", path, err)
	}
	l := &Log{f: f, now: now, head: genesis}
	l.cond = sync.NewCond(&l.mu)
	if err := l.loadTail(); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	return l, nil
}

// loadTail reads the last record to continue the chain, cutting off a torn
// final line.
func (l *Log) loadTail() error {
	fi, err := l.f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if size == 0 {
		return nil
	}
	n := min(size, maxLine+2) // the last line, its newline and the newline before it
	tail := make([]byte, n)
	if _, err := l.f.ReadAt(tail, size-n); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read last record: %w", err)
	}
	if tail[len(tail)-1] != '\n' {
		cut := bytes.LastIndexByte(tail, '\n') + 1 // 0 if none
		if cut == 0 && size > n {
			return errors.New("last line is longer than any record: not an audit log?")
		}
		keep := size - n + int64(cut)
		if err := l.f.Truncate(keep); err != nil {
			return fmt.Errorf("cut torn last line: %w", err)
		}
		if err := l.f.Sync(); err != nil {
			return fmt.Errorf("cut torn last line: %w", err)
		}
		tail = tail[:cut]
		if keep == 0 {
			return nil
		}
	}
	tail = tail[:len(tail)-1]
	start := bytes.LastIndexByte(tail, '\n') + 1
	if start == 0 && size > n {
		return errors.New("last record is longer than any record: not an audit log?")
	}
	last := tail[start:]
	rec, reason := decode(last)
	if reason != "" {
		return &BrokenError{Seq: rec.Seq, Reason: "last record: " + reason}
	}
	l.seq = rec.Seq
	l.head = sha256.Sum256(last)
	return nil
}

// Record appends ev as the next record and returns once it is on stable
// storage. A zero Time is filled from the clock; times are stored in UTC.
// After a failed write or fsync the log refuses every later Record: the
// caller should treat auditing as down (fail closed).
func (l *Log) Record(ev Event) error {
	if ev.Time.IsZero() {
		ev.Time = l.now()
	}
	ev.Time = ev.Time.UTC()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed != nil {
		return l.failed
	}
	line, err := encode(record{Seq: l.seq + 1, Prev: hex.EncodeToString(l.head[:]), Event: ev})
	if err != nil {
		return fmt.Errorf("audit: encode %s: %w", ev.Action, err)
	}
	if len(line) > maxLine {
		return fmt.Errorf("audit: record %s: %d bytes, more than %d", ev.Action, len(line), maxLine)
	}
	// One write call under the lock: lines never interleave, order is seq order.
	if _, err := l.f.Write(append(line, '\n')); err != nil {
		l.failed = fmt.Errorf("audit: write: %w", err) // a torn line may be in the file now
		return l.failed
	}
	l.seq++
	l.head = sha256.Sum256(line)
	l.written++
	mine := l.written
	for l.synced < mine {
		if l.failed != nil {
			return l.failed
		}
		if l.syncing {
			l.cond.Wait()
			continue
		}
		// Lead an fsync covering every record written so far.
		target := l.written
		l.syncing = true
		l.mu.Unlock()
		err := l.f.Sync()
		l.mu.Lock()
		l.syncing = false
		if err != nil {
			// After a failed fsync the kernel may have dropped the data; a
			// later fsync's success proves nothing.
			l.failed = fmt.Errorf("audit: fsync: %w", err)
		} else {
			l.synced = target
		}
		l.cond.Broadcast()
	}
	return nil
}

// Err returns nil while Record can still succeed, or the error that stopped
// the log for good: the failed write or fsync, or ErrClosed after Close.
// Callers that must not act unaudited check it before they take work on
// (fail closed), rather than learn of the failure after acting.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

// Head returns the last record's seq and the hex SHA-256 of its line — the
// value to anchor elsewhere so that cutting records from the end shows.
func (l *Log) Head() (seq uint64, hash string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq, hex.EncodeToString(l.head[:])
}

// Close makes every written record durable and closes the file. Later
// Records return ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.syncing {
		l.cond.Wait()
	}
	if errors.Is(l.failed, ErrClosed) {
		return nil
	}
	var err error
	if l.failed == nil && l.synced < l.written {
		if err = l.f.Sync(); err == nil {
			l.synced = l.written
		}
	}
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.failed = ErrClosed
	l.cond.Broadcast()
	if err != nil {
		return fmt.Errorf("audit: close: %w", err)
	}
	return nil
}
