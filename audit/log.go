package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Log is an append-only, hash-chained audit log file. It implements
// Recorder and is safe for concurrent use; concurrent Records share fsyncs
// (group commit), but none returns before its own record is durable.
//
// After a failed write or fsync (a full disk, an I/O error) Record and Err
// report the failure, so callers defer work that must be audited, and the
// log tries again by itself at most once per RetryEvery: it cuts the file
// back to the last record known durable, makes that durable, and writes an
// audit.recovered record saying how long it was down. Only when that
// record is on disk do Record and Err succeed again. The records cut back
// were never acknowledged (their Record returned the error).
type Log struct {
	f    *os.File
	opt  Options
	now  func() time.Time
	m    logMetrics
	path string

	mu      sync.Mutex
	cond    *sync.Cond
	seq     uint64            // last record's seq
	head    [sha256.Size]byte // SHA-256 of the last line
	size    int64             // bytes of whole lines written
	written uint64            // records written to the file
	synced  uint64            // records known durable
	durable mark              // the state at the last successful fsync
	syncing bool
	epoch   uint64    // recoveries so far: a record written in an earlier epoch and not durable was cut
	failed  error     // ErrClosed for good, or the write/fsync error the log is recovering from
	since   time.Time // when failed was first set (not for ErrClosed)
	tried   time.Time // last recovery attempt
}

// mark is the log's state after a given record.
type mark struct {
	records uint64
	seq     uint64
	head    [sha256.Size]byte
	size    int64
}

// Options tunes OpenWith. The zero value is Open's behaviour.
type Options struct {
	Now        func() time.Time      // nil → time.Now; also times the retries
	Logger     *slog.Logger          // nil → no log lines; errors are still returned
	Metrics    prometheus.Registerer // nil → not exported
	RetryEvery time.Duration         // after a failure, how often to try again; default 1s
}

type logMetrics struct {
	failures, recoveries prometheus.Counter
	breaks               prometheus.Gauge
}

var _ Recorder = (*Log)(nil)

// Open is OpenWith with only a clock.
func Open(path string, now func() time.Time) (*Log, error) {
	return OpenWith(path, Options{Now: now})
}

// OpenWith opens or creates (mode 0600) the log at path for appending and
// continues the chain from its last record. Only one Log may have a file
// open: a second Open, in this process or another, fails rather than fork
// the chain. A last line left incomplete by a crash during a write (never
// acknowledged: Record had not returned) is cut off.
//
// The whole file is verified, by each record's seq, prev and own hash
// rather than a full decode (verify's fast mode: about 1 s per 200,000
// records on a loaded two-core machine, where Verify takes 6.5 s), so the
// check stays affordable at every start as the log grows. A chain found broken is never continued as
// if it were whole, nor refused (the relay must keep an audit trail): the
// break is logged at error level, counted (nhsrelay_audit_chain_breaks),
// and a new segment is started: an audit.segment record with seq 1 whose
// prev is the hash of the last line as found, saying where the chain
// broke. Verify reports the break and checks the new segment after it.
func OpenWith(path string, opt Options) (*Log, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.RetryEvery <= 0 {
		opt.RetryEvery = time.Second
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: open: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: open %s: in use by another writer: %w", path, err)
	}
	l := &Log{f: f, opt: opt, now: opt.Now, path: path, head: genesis}
	l.cond = sync.NewCond(&l.mu)
	if err := l.load(); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	if err := l.register(opt.Metrics); err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

// load cuts a torn last line, verifies the file and continues its chain,
// starting a new segment after a break.
func (l *Log) load() error {
	if err := l.cutTorn(); err != nil {
		return err
	}
	if _, err := l.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	c, err := verify(l.f, true)
	if err != nil {
		return err
	}
	fi, err := l.f.Stat()
	if err != nil {
		return err
	}
	l.seq, l.head, l.size = c.seq, c.head, fi.Size()
	l.m.breaks = prometheus.NewGauge(prometheus.GaugeOpts{Name: "nhsrelay_audit_chain_breaks",
		Help: "Breaks in the audit log's hash chain found when it was opened (each followed by a new segment); see nhsrelay audit verify."})
	l.m.breaks.Set(float64(len(c.breaks)))
	for _, b := range c.breaks {
		if b.Resumed > 0 {
			l.opt.Logger.Warn("audit log chain has a break from before, followed by a new segment",
				"path", l.path, "line", b.Line, "seq", b.Seq, "reason", b.Reason, "segment_line", b.Resumed)
		}
	}
	if c.broken {
		b := c.breaks[len(c.breaks)-1]
		l.opt.Logger.Error("AUDIT LOG CHAIN BROKEN: starting a new, linked segment; examine it with nhsrelay audit verify",
			"path", l.path, "line", b.Line, "seq", b.Seq, "reason", b.Reason)
		l.seq, l.head = 0, c.lastLine
		detail := fmt.Sprintf("new segment: the chain before this record is broken at line %d (seq %d): %s; lines %d to %d are outside any verified chain; this segment's first prev is the hash of line %d as found",
			b.Line, b.Seq, b.Reason, b.Line, c.lines, c.lines)
		if err := l.writeSynced(Event{Time: l.now(), Actor: "system", Action: segmentAction, Outcome: "broken", Detail: detail}); err != nil {
			return fmt.Errorf("start a new segment after a break: %w", err)
		}
	}
	l.durable = mark{records: l.written, seq: l.seq, head: l.head, size: l.size}
	return nil
}

// cutTorn cuts off a last line without its newline (a crash during a
// write that was never acknowledged).
func (l *Log) cutTorn() error {
	fi, err := l.f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if size == 0 {
		return nil
	}
	var last [1]byte
	if _, err := l.f.ReadAt(last[:], size-1); err != nil {
		return fmt.Errorf("read last byte: %w", err)
	}
	if last[0] == '\n' {
		return nil
	}
	// Find the last newline, reading back in blocks.
	keep := int64(0)
	buf := make([]byte, 64<<10)
	for end := size; end > 0; {
		start := max(0, end-int64(len(buf)))
		b := buf[:end-start]
		if _, err := l.f.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read last record: %w", err)
		}
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			keep = start + int64(i) + 1
			break
		}
		end = start
	}
	if err := l.f.Truncate(keep); err != nil {
		return fmt.Errorf("cut torn last line: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("cut torn last line: %w", err)
	}
	return nil
}

func (l *Log) register(reg prometheus.Registerer) error {
	l.m.failures = prometheus.NewCounter(prometheus.CounterOpts{Name: "nhsrelay_audit_write_failures_total",
		Help: "Audit log writes or fsyncs that failed; work that must be audited waits until the log recovers."})
	l.m.recoveries = prometheus.NewCounter(prometheus.CounterOpts{Name: "nhsrelay_audit_recoveries_total",
		Help: "Times the audit log took records again after a failure."})
	up := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "nhsrelay_audit_up",
		Help: "1 while the audit log takes records, 0 while it is failing (mail and directory changes wait)."}, func() float64 {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.failed != nil {
			return 0
		}
		return 1
	})
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{l.m.failures, l.m.recoveries, l.m.breaks, up} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("audit: register metrics: %w", err)
		}
	}
	return nil
}

// writeSynced writes ev and fsyncs, before the log is shared.
func (l *Log) writeSynced(ev Event) error {
	if err := l.appendLocked(ev); err != nil {
		return err
	}
	if err := l.f.Sync(); err != nil {
		return err
	}
	l.synced = l.written
	return nil
}

// appendLocked encodes ev as the next record and writes it; l.mu is held
// (or the log is not shared yet). A failed write leaves the state as it
// was, and part of the line may be in the file.
func (l *Log) appendLocked(ev Event) error {
	if ev.Time.IsZero() {
		ev.Time = l.now()
	}
	ev.Time = ev.Time.UTC()
	line, err := encode(record{Seq: l.seq + 1, Prev: hex.EncodeToString(l.head[:]), Event: ev})
	if err != nil {
		return fmt.Errorf("audit: encode %s: %w", ev.Action, err)
	}
	if len(line) > maxLine {
		return fmt.Errorf("audit: record %s: %d bytes, more than %d", ev.Action, len(line), maxLine)
	}
	// One write call under the lock: lines never interleave, order is seq order.
	if _, err := l.f.Write(append(line, '\n')); err != nil {
		return &writeError{err}
	}
	l.seq++
	l.head = sha256.Sum256(line)
	l.size += int64(len(line)) + 1
	l.written++
	return nil
}

// writeError marks a failed write (as opposed to a record refused for its
// content, which leaves the log healthy).
type writeError struct{ err error }

func (e *writeError) Error() string { return "audit: write: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// Record appends ev as the next record and returns once it is on stable
// storage. A zero Time is filled from the clock; times are stored in UTC.
// While the log is failing it returns the failure (after trying to
// recover, at most once per RetryEvery): the caller must not act as if the
// event were recorded.
func (l *Log) Record(ev Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return err
	}
	err := l.appendLocked(ev)
	var we *writeError
	if errors.As(err, &we) {
		l.failLocked(err) // a torn line may be in the file now
		return l.failed
	}
	if err != nil {
		return err
	}
	mine, epoch := l.written, l.epoch
	for l.synced < mine {
		if l.failed != nil {
			return l.failed
		}
		if l.epoch != epoch {
			return errors.New("audit: record cut when the log recovered from a failure; not recorded")
		}
		if l.syncing {
			l.cond.Wait()
			continue
		}
		// Lead an fsync covering every record written so far.
		target := mark{records: l.written, seq: l.seq, head: l.head, size: l.size}
		l.syncing = true
		l.mu.Unlock()
		err := l.f.Sync()
		l.mu.Lock()
		l.syncing = false
		if err != nil {
			// After a failed fsync the kernel may have dropped the data; a
			// later fsync's success proves nothing for these records.
			l.failLocked(fmt.Errorf("audit: fsync: %w", err))
		} else if target.records > l.synced {
			l.synced, l.durable = target.records, target
		}
		l.cond.Broadcast()
	}
	return nil
}

// failLocked puts the log into the failing state.
func (l *Log) failLocked(err error) {
	l.m.failures.Inc()
	if l.failed == nil {
		l.failed, l.since, l.tried = err, l.now(), l.now()
		l.opt.Logger.Error("audit log cannot be written: work that must be audited waits until it recovers",
			"path", l.path, "err", err)
	}
}

// usableLocked returns nil if a record can be written now, trying to
// recover a failing log when RetryEvery has passed since the last try.
func (l *Log) usableLocked() error {
	if l.failed == nil || errors.Is(l.failed, ErrClosed) {
		return l.failed
	}
	if l.now().Sub(l.tried) < l.opt.RetryEvery {
		return l.failed
	}
	for l.syncing {
		l.cond.Wait()
	}
	l.tried = l.now()
	if err := l.recoverLocked(); err != nil {
		l.m.failures.Inc()
		l.opt.Logger.Debug("audit log still cannot be written", "path", l.path, "err", err)
		return l.failed
	}
	return nil
}

// recoverLocked cuts the file back to its durable state and writes an
// audit.recovered record; only once that record is durable is the log
// usable again.
func (l *Log) recoverLocked() error {
	d := l.durable
	if err := l.f.Truncate(d.size); err != nil {
		return err
	}
	if err := l.f.Sync(); err != nil {
		return err
	}
	lostRecords := l.written - d.records
	l.seq, l.head, l.size, l.written, l.synced = d.seq, d.head, d.size, d.records, d.records
	down := l.now().Sub(l.since)
	ev := Event{Time: l.now(), Actor: "system", Action: "audit.recovered", Outcome: "ok",
		Detail: fmt.Sprintf("the audit log could not be written from %s for %s (%v); %d record(s) written but not durable were cut and refused to their callers, who retry them",
			l.since.UTC().Format(time.RFC3339), down.Round(time.Second), l.failed, lostRecords)}
	if err := l.appendLocked(ev); err != nil {
		return err
	}
	if err := l.f.Sync(); err != nil {
		return err
	}
	l.synced = l.written
	l.durable = mark{records: l.written, seq: l.seq, head: l.head, size: l.size}
	l.opt.Logger.Warn("audit log writable again", "path", l.path, "down_for", down.Round(time.Second).String(), "was", l.failed)
	l.m.recoveries.Inc()
	l.failed = nil
	l.epoch++
	l.cond.Broadcast()
	return nil
}

// Err returns nil while Record can succeed, or why it cannot: the write or
// fsync failure the log has not recovered from yet (it tries again here
// too, at most once per RetryEvery), or ErrClosed after Close. Callers
// that must not act unaudited check it before they take work on.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.usableLocked()
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
