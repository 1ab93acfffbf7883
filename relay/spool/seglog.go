package spool

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Segment files hold small bodies so that concurrent writers share one
// fdatasync instead of paying a file create, an fsync and a folder entry
// each (group commit, as issue 3 allows: no Write returns before an fsync
// that began after its own record was written has finished).
//
// A segment is <16 hex digits>.seg, written only by the Spool that created
// it, append-only, as a sequence of records:
//
//	"NRSR" | id length (1 byte) | id | sealed length (uint32 BE) | sealed | CRC-32C (4)
//
// where sealed is a whole body in the file format of stream.go (header and
// chunks, the ID in each chunk's associated data) and the CRC covers the
// record before it. Records are appended one write at a time under a lock,
// so a record that is not durable has no durable, acknowledged record after
// it: an fsync that covered a later record began after this one was written
// and so covered it too. Reading a segment therefore stops at the first
// record that is torn or fails its CRC, and loses nothing acknowledged.
//
// A segment is never appended to after a restart (Open starts a new one
// when the first small body arrives) and is deleted once every record in it
// has been removed and no reader has it open. Removing a record is not
// made durable, as for a body file: after a crash it reappears without a
// queue record and recovery removes it again.
const (
	recMagic  = "NRSR"
	segSuffix = ".seg"
	// segMax is the size after which a segment is closed to new records.
	// A segment lives until its last message leaves the queue, so small
	// segments free space sooner; each new one costs a folder fsync.
	segMax = 16 << 20
	// compactBelow: a closed segment whose live records fall to this
	// fraction of those it had is compacted (compact).
	compactBelow = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segment is one segment file.
type segment struct {
	name    string
	f       *os.File
	size    int64 // bytes appended (current segment) or valid (scanned one)
	live    int   // records not removed
	records int   // records it holds (live or not)
	readers int   // open readers
	full    bool  // takes no more records
	moving  bool  // compact is copying its live records out
	sync    groupSync
}

// loc is where one small body's sealed bytes are.
type loc struct {
	seg    *segment
	off, n int64
}

// appendRecord encodes one record around sealed into dst.
func appendRecord(dst []byte, id string, sealed []byte) []byte {
	start := len(dst)
	dst = append(dst, recMagic...)
	dst = append(dst, byte(len(id)))
	dst = append(dst, id...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(sealed)))
	dst = append(dst, sealed...)
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// recordPrefix is the size of a record before its sealed bytes.
func recordPrefix(id string) int64 { return int64(len(recMagic) + 1 + len(id) + 4) }

// scanSegment reads the valid records of the segment file at path and
// calls add for each one, with the offset and length of its sealed bytes.
// It stops, without error, at the end of the file or at the first torn or
// damaged record; only a failure to read the file is an error.
func scanSegment(f *os.File, add func(id string, off, n int64)) (valid int64, err error) {
	br := bufio.NewReaderSize(f, 256<<10)
	var off int64
	hdr := make([]byte, len(recMagic)+1)
	var buf []byte
	for {
		if _, err := io.ReadFull(br, hdr); err != nil {
			return off, readErr(err)
		}
		if string(hdr[:len(recMagic)]) != recMagic {
			return off, nil
		}
		idLen := int(hdr[len(recMagic)])
		rest := make([]byte, idLen+4)
		if _, err := io.ReadFull(br, rest); err != nil {
			return off, readErr(err)
		}
		id := string(rest[:idLen])
		n := int64(binary.BigEndian.Uint32(rest[idLen:]))
		if validID(id) != nil || n < int64(headerSize+tagSize) || n > 2*sealedChunk {
			return off, nil
		}
		if int64(cap(buf)) < n+4 {
			buf = make([]byte, n+4)
		}
		buf = buf[:n+4]
		if _, err := io.ReadFull(br, buf); err != nil {
			return off, readErr(err)
		}
		h := crc32.New(castagnoli)
		h.Write(hdr)
		h.Write(rest)
		h.Write(buf[:n])
		if h.Sum32() != binary.BigEndian.Uint32(buf[n:]) {
			return off, nil
		}
		add(id, off+recordPrefix(id), n)
		off += recordPrefix(id) + n + 4
	}
}

// readErr maps the end of the file, torn or not, to no error.
func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	return err
}

// loadSegments indexes the records of every segment in the folder and
// deletes segments with none. Called by open, before the Spool is shared.
func (s *Spool) loadSegments(names []string) error {
	slices.Sort(names)
	for _, name := range names {
		path := filepath.Join(s.dir, name)
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("open segment %s: %w", name, err)
		}
		seg := &segment{name: path, f: f, full: true}
		seg.size, err = scanSegment(f, func(id string, off, n int64) {
			if _, dup := s.index[id]; dup {
				return
			}
			s.index[id] = loc{seg: seg, off: off, n: n}
			seg.live++
			seg.records++
		})
		if err != nil {
			f.Close()
			return fmt.Errorf("read segment %s: %w", name, err)
		}
		if seg.live == 0 {
			f.Close()
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove empty segment %s: %w", name, err)
			}
		}
	}
	return nil
}

// currentLocked returns the segment that takes the next record, creating
// one (and making its name durable) when there is none or it is full.
// s.mu is held.
func (s *Spool) currentLocked() (*segment, error) {
	if s.cur != nil && !s.cur.full && s.cur.size < s.segMax {
		return s.cur, nil
	}
	if old := s.cur; old != nil {
		old.full = true
		s.cur = nil
		s.dropLocked(old)
	}
	var f *os.File
	var path string
	for i := int64(0); ; i++ {
		path = filepath.Join(s.dir, fmt.Sprintf("%016x%s", time.Now().UnixNano()+i, segSuffix))
		var err error
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || i > 100 {
			return nil, fmt.Errorf("create segment: %w", err)
		}
	}
	// The segment's name must be durable before any record in it is
	// acknowledged. Once per segment, so it may hold the lock.
	if err := s.dirs.sync(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("fsync folder for new segment: %w", err)
	}
	seg := &segment{name: path, f: f}
	seg.sync.do = func() error { return fdatasync(f) }
	s.cur = seg
	return seg, nil
}

// dropLocked deletes seg once it takes no more records, holds no live one
// and no reader has it open. s.mu is held.
func (s *Spool) dropLocked(seg *segment) {
	if !seg.full || seg.live > 0 || seg.readers > 0 || seg.f == nil {
		return
	}
	seg.f.Close()
	seg.f = nil
	if err := os.Remove(seg.name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		// Harmless: at the next start its records have no queue records
		// and are removed, and then the segment too.
		return
	}
}

// writeSmall appends id's sealed body as one record and returns once an
// fdatasync begun after the append has finished.
func (s *Spool) writeSmall(id string, sealed []byte) error {
	rec := appendRecord(make([]byte, 0, int(recordPrefix(id))+len(sealed)+4), id, sealed)
	s.mu.Lock()
	if s.logFailed != nil {
		s.mu.Unlock()
		return s.logFailed
	}
	if _, ok := s.index[id]; ok {
		s.mu.Unlock()
		return fmt.Errorf("spool: write %s: %w", id, ErrExists)
	}
	seg, err := s.currentLocked()
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("spool: write %s: %w", id, err)
	}
	off := seg.size
	if _, err := seg.f.WriteAt(rec, off); err != nil {
		// Part of the record may be in the file: nothing may follow it.
		seg.full = true
		s.mu.Unlock()
		return fmt.Errorf("spool: write %s: %w", id, err)
	}
	seg.size += int64(len(rec))
	seg.live++
	seg.records++
	s.index[id] = loc{seg: seg, off: off + recordPrefix(id), n: int64(len(sealed))}
	s.mu.Unlock()
	if err := seg.sync.sync(); err != nil {
		s.mu.Lock()
		// After a failed fsync nothing in the log can be trusted to be
		// durable (see groupSync): refuse further small writes.
		if s.logFailed == nil {
			s.logFailed = fmt.Errorf("spool: segment fdatasync failed, restart needed: %w", err)
		}
		s.removeLocked(id)
		s.mu.Unlock()
		return fmt.Errorf("spool: fdatasync %s: %w", id, err)
	}
	return nil
}

// removeLocked forgets a small body; false if id is not one. s.mu is held.
func (s *Spool) removeLocked(id string) bool {
	l, ok := s.index[id]
	if !ok {
		return false
	}
	delete(s.index, id)
	l.seg.live--
	s.dropLocked(l.seg)
	s.maybeCompactLocked(l.seg)
	return true
}

// copyRecord appends a copy of id's record in seg (at l) to the current
// segment, which must stay *dst once set, and adds its place to *moved;
// the copy counts as live in it until compact switches or drops it.
func (s *Spool) copyRecord(seg *segment, id string, l loc, dst **segment, moved *[]loc) bool {
	sealed := make([]byte, l.n)
	if _, err := seg.f.ReadAt(sealed, l.off); err != nil {
		return false
	}
	rec := appendRecord(nil, id, sealed)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.logFailed != nil {
		return false
	}
	cur, err := s.currentLocked()
	if err != nil || (*dst != nil && cur != *dst) {
		return false // rotated mid-way: the copies so far are all in *dst
	}
	if _, err := cur.f.WriteAt(rec, cur.size); err != nil {
		cur.full = true // part of the record may be there: nothing after it
		return false
	}
	*dst = cur
	*moved = append(*moved, loc{seg: cur, off: cur.size + recordPrefix(id), n: l.n})
	cur.size += int64(len(rec))
	cur.records++
	cur.live++ // held until compact's switch, so cur is not dropped
	return true
}

// maybeCompactLocked starts compact for seg when few of its records are
// still live. s.mu is held.
func (s *Spool) maybeCompactLocked(seg *segment) {
	if !seg.full || seg.moving || seg.f == nil || seg.live == 0 || seg.live*compactBelow > seg.records {
		return
	}
	seg.moving = true
	seg.readers++ // keeps the file open while compact reads it
	go s.compact(seg)
}

// compact copies seg's live records to the current segment and then lets
// seg go. Without it, a few messages that stay queued for days (deferred,
// held) would each keep a whole segment of delivered ones on disk. A
// sealed body does not depend on where it is (its associated data is its
// header and ID), so the copy is the same bytes. The index moves to the
// copies only once they are durable; a crash before that leaves both,
// which read the same. A failure leaves the records where they were.
func (s *Spool) compact(seg *segment) {
	defer func() {
		s.mu.Lock()
		seg.readers--
		seg.moving = false
		s.dropLocked(seg)
		s.mu.Unlock()
	}()
	s.mu.Lock()
	var ids []string
	var locs []loc
	for id, l := range s.index {
		if l.seg == seg {
			ids, locs = append(ids, id), append(locs, l)
		}
	}
	s.mu.Unlock()
	moved := make([]loc, 0, len(ids))
	var dst *segment
	for i, id := range ids {
		if !s.copyRecord(seg, id, locs[i], &dst, &moved) {
			break // the copies so far are switched below; the rest stay
		}
	}
	ids = ids[:len(moved)]
	if dst == nil {
		return
	}
	err := dst.sync.sync()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, id := range ids {
		dst.live--
		if err != nil {
			continue
		}
		if l, ok := s.index[id]; ok && l.seg == seg { // not removed meanwhile
			s.index[id] = moved[i]
			dst.live++
			seg.live--
		}
	}
	if err != nil && s.logFailed == nil {
		s.logFailed = fmt.Errorf("spool: segment fdatasync failed, restart needed: %w", err)
	}
	s.dropLocked(dst)
}

// openSmall returns a reader of id's sealed bytes, or ok false if id is
// not a small body.
func (s *Spool) openSmall(id string) (r io.Reader, c io.Closer, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.index[id]
	if !ok {
		return nil, nil, false
	}
	l.seg.readers++
	return io.NewSectionReader(l.seg.f, l.off, l.n), &segReader{s: s, seg: l.seg}, true
}

// segReader releases its segment when the body reader is closed.
type segReader struct {
	s      *Spool
	seg    *segment
	closed bool
}

func (r *segReader) Close() error {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	if !r.closed {
		r.closed = true
		r.seg.readers--
		r.s.dropLocked(r.seg)
	}
	return nil
}

// sealSmall reads body to EOF if it has at most len(plain)-1 bytes, and
// then returns its sealed form. Otherwise it returns the bytes it read
// (all of plain) and small false: the caller writes a body file.
func (s *Spool) sealSmall(id string, body io.Reader, plain []byte) (n int, sealed []byte, small bool, err error) {
	n, err = io.ReadFull(body, plain)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
	case err != nil:
		return n, nil, false, fmt.Errorf("read body: %w", err)
	default:
		return n, nil, false, nil // longer than a small body
	}
	header, err := newHeader(s.kid)
	if err != nil {
		return n, nil, false, err
	}
	var out bytes.Buffer
	out.Grow(headerSize + n + 2*tagSize)
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	if _, err := seal(&out, bytes.NewReader(plain[:n]), s.aead, header, append(header, id...), *bp); err != nil {
		return n, nil, false, err
	}
	return n, out.Bytes(), true, nil
}

// isSegment reports whether a folder entry is a segment file.
func isSegment(name string) bool { return strings.HasSuffix(name, segSuffix) }
