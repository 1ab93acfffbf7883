package spool

import (
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
// it, append-only, as a sequence of records, each framed on its own so
// that damage stays inside the record it hits:
//
//	"NRS2" | id length (1) | id | sealed length (uint32 BE) | CRC-32C of the header (4)
//	       | sealed | CRC-32C of sealed (4)
//
// where sealed is a whole body in the file format of stream.go (header and
// chunks, the ID in each chunk's associated data). The header CRC covers
// everything before it, so a record whose header checks out has a
// trustworthy length: a record whose sealed bytes fail their CRC is
// reported as damaged, with its ID, and reading goes on at the next
// record. A record whose header fails (or a stretch that is not a record
// at all) is skipped by searching for the next magic whose header checks
// out (resynchronisation); a false match needs the 4 magic bytes and the
// 32-bit CRC to agree by chance. Records are appended one write at a time
// under a lock, so only the last records of a segment can be torn by a
// crash, and they were never acknowledged (their fdatasync had not
// finished); anything damaged before them is reported (Damaged) so the
// relay can tell the sender and the operator. Version 1 records ("NRSR",
// one CRC over the whole record) are still read.
//
// A segment is never appended to after a restart (Open starts a new one
// when the first small body arrives) and is deleted once every record in it
// has been removed and no reader has it open. Removing a record is not
// made durable, as for a body file: after a crash it reappears without a
// queue record and recovery removes it again.
const (
	recMagic   = "NRS2"
	recMagicV1 = "NRSR" // one CRC over the whole record; read, never written
	segSuffix  = ".seg"
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
	dst = binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
	dst = append(dst, sealed...)
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(sealed, castagnoli))
}

// recordPrefix is the size of a record before its sealed bytes.
func recordPrefix(id string) int64 { return int64(len(recMagic) + 1 + len(id) + 4 + 4) }

// maxSealedSmall bounds a record's sealed length: a small body is one chunk.
const maxSealedSmall = 2 * sealedChunk

// scanSegment parses the records of a whole segment held in raw. It calls
// add for each good record, with the offset and length of its sealed
// bytes, and damaged for each stretch it had to skip: a record whose
// sealed bytes fail their CRC (id known), or bytes that are no record
// (id ""), after which it resynchronises on the next good header. A tail
// of zeros or a torn last record (a crash during a write that was never
// acknowledged) is reported as torn: damaged with torn true. It returns
// the length of the prefix that holds whole records.
func scanSegment(raw []byte, add func(id string, off, n int64), damaged func(id string, off, n int64, torn bool, why string)) (valid int64) {
	off := 0
	for off < len(raw) {
		id, sealedOff, n, end, status := parseRecord(raw, off)
		switch status {
		case recOK:
			add(id, int64(sealedOff), int64(n))
			off, valid = end, int64(end)
			continue
		case recBadBody:
			if end <= len(raw) {
				damaged(id, int64(off), int64(end-off), false, "its sealed bytes fail their CRC-32C")
				off, valid = end, int64(end)
				continue
			}
			// The header is good but the file ends inside the record.
			damaged(id, int64(off), int64(len(raw)-off), true, "the segment ends inside it (torn write)")
			return valid
		}
		next := resync(raw, off+1)
		if next < 0 {
			if !allZero(raw[off:]) { // zeros: space a crash left unwritten
				damaged("", int64(off), int64(len(raw)-off), true, "unreadable bytes at the end of the segment (a torn write, or damage)")
			}
			return valid
		}
		damaged("", int64(off), int64(next-off), false, "unreadable bytes (no record header checks out) before the next record")
		off = next
	}
	return valid
}

// record parse outcomes.
const (
	recOK      = iota
	recBadBody // header good (id, length known), sealed bytes fail or are cut short
	recBad     // no good record header here
)

// parseRecord parses the record at raw[off:]. For recOK and recBadBody it
// returns the id, where the sealed bytes start, their length, and where
// the record ends (which may be past len(raw) for a torn record).
func parseRecord(raw []byte, off int) (id string, sealedOff, n, end int, status int) {
	r := raw[off:]
	if len(r) < len(recMagic)+1 {
		return "", 0, 0, 0, recBad
	}
	v1 := string(r[:len(recMagicV1)]) == recMagicV1
	if !v1 && string(r[:len(recMagic)]) != recMagic {
		return "", 0, 0, 0, recBad
	}
	idLen := int(r[len(recMagic)])
	h := len(recMagic) + 1 + idLen + 4 // header without its CRC
	if len(r) < h+4 {
		return "", 0, 0, 0, recBad
	}
	id = string(r[len(recMagic)+1 : len(recMagic)+1+idLen])
	n = int(binary.BigEndian.Uint32(r[h-4:]))
	if validID(id) != nil || n < headerSize+tagSize || n > maxSealedSmall {
		return "", 0, 0, 0, recBad
	}
	if v1 { // "NRSR" | id length | id | sealed length | sealed | CRC of all before
		end = h + n + 4
		if len(r) < end || crc32.Checksum(r[:h+n], castagnoli) != binary.BigEndian.Uint32(r[h+n:]) {
			return "", 0, 0, 0, recBad // no header CRC: nothing in it can be trusted
		}
		return id, off + h, n, off + end, recOK
	}
	if crc32.Checksum(r[:h], castagnoli) != binary.BigEndian.Uint32(r[h:]) {
		return "", 0, 0, 0, recBad
	}
	sealedOff, end = off+h+4, off+h+4+n+4
	if end > len(raw) || crc32.Checksum(raw[sealedOff:sealedOff+n], castagnoli) != binary.BigEndian.Uint32(raw[sealedOff+n:]) {
		return id, sealedOff, n, end, recBadBody
	}
	return id, sealedOff, n, end, recOK
}

// resync returns the offset of the next record at or after from whose
// header checks out (a v2 header CRC, or a whole v1 record), or -1.
func resync(raw []byte, from int) int {
	for from < len(raw) {
		i := bytes.Index(raw[from:], []byte("NRS"))
		if i < 0 {
			return -1
		}
		at := from + i
		if _, _, _, _, st := parseRecord(raw, at); st != recBad {
			return at
		}
		from = at + 1
	}
	return -1
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// loadSegments indexes the records of every segment in the folder, notes
// every damaged stretch (Damaged), and deletes segments with no good
// record. A segment is read whole (at most segMax and one record). Called
// by open, before the Spool is shared.
func (s *Spool) loadSegments(names []string) error {
	slices.Sort(names)
	for _, name := range names {
		path := filepath.Join(s.dir, name)
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("open segment %s: %w", name, err)
		}
		raw, err := io.ReadAll(f)
		if err != nil {
			f.Close()
			return fmt.Errorf("read segment %s: %w", name, err)
		}
		seg := &segment{name: path, f: f, full: true}
		seg.size = scanSegment(raw, func(id string, off, n int64) {
			if _, dup := s.index[id]; dup {
				return // a compaction copy: both read the same
			}
			s.index[id] = loc{seg: seg, off: off, n: n}
			seg.live++
			seg.records++
		}, func(id string, off, n int64, torn bool, why string) {
			s.damage = append(s.damage, Damage{ID: id, File: name, Offset: off, Length: n, Torn: torn, Reason: why})
		})
		if seg.live == 0 {
			f.Close()
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove empty segment %s: %w", name, err)
			}
		}
	}
	// A record copied by compaction may be damaged in one segment and good
	// in another: then nothing was lost.
	s.damage = slices.DeleteFunc(s.damage, func(d Damage) bool {
		_, ok := s.index[d.ID]
		return d.ID != "" && ok
	})
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
		// After a failed fsync nothing written to this segment since its
		// last good one can be trusted to be durable (see groupSync): it
		// takes no more records, and every writer waiting on it fails. The
		// records acknowledged before stay readable; the next write starts
		// a new segment, so intake resumes by itself once the disk works
		// again (a full disk, for one).
		seg.full = true
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
	if err != nil {
		dst.full = true // as in writeSmall: nothing more goes to a segment whose fdatasync failed
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

// crcOf is the CRC-32C (Castagnoli) the records carry.
func crcOf(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }
