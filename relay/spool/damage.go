package spool

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"golang.org/x/crypto/chacha20poly1305"
)

// Damage is a stretch of the spool that Open found unreadable: a segment
// record or bytes that fail their checks (seglog.go), or a body file that
// is truncated or altered (checkBody). A message whose body is damaged
// cannot be delivered; the relay fails it at once and tells its sender.
type Damage struct {
	ID     string // the message whose body it held; "" when no record header could be read
	File   string // segment or body file name in the spool folder
	Offset int64  // where the damage starts in File
	Length int64  // bytes affected (the whole record or stretch)
	Torn   bool   // at the end of a segment, where a crash tears writes that were never acknowledged
	Reason string // in words, for the operator's log
}

func (d Damage) String() string {
	id := d.ID
	if id == "" {
		id = "unknown message"
	}
	return fmt.Sprintf("%s: %s at offset %d (%d bytes): %s", d.File, id, d.Offset, d.Length, d.Reason)
}

// Damaged returns what Open found damaged, in the order found. The bodies
// named are not among IDs, and Open of one is an error wrapping ErrCorrupt.
func (s *Spool) Damaged() []Damage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Damage(nil), s.damage...)
}

// checkBody authenticates the header and the last chunk of body file id,
// which finds a file cut short anywhere (the chunk at the new end was not
// sealed as the last one, or is incomplete) and any change to the header
// or the last chunk, by reading one chunk. A change in an earlier chunk
// is found when the body is read (at the first delivery attempt). An
// error wraps ErrCorrupt or ErrWrongKey, or is an I/O error.
func (s *Spool) checkBody(id string) error {
	f, err := os.Open(s.path(id))
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	o, err := newOpener(io.NewSectionReader(f, 0, int64(headerSize)), f, s.aead, s.kid, id)
	if err != nil {
		return err
	}
	body := fi.Size() - int64(headerSize)
	if body < tagSize {
		return fmt.Errorf("%w: truncated: %d bytes after the header", ErrCorrupt, body)
	}
	chunks := (body + sealedChunk - 1) / sealedChunk
	if chunks-1 > math.MaxUint32 {
		return fmt.Errorf("%w: too many chunks", ErrCorrupt)
	}
	lastOff := int64(headerSize) + (chunks-1)*sealedChunk
	buf := make([]byte, fi.Size()-lastOff)
	if _, err := f.ReadAt(buf, lastOff); err != nil {
		return fmt.Errorf("spool: read last chunk of %s: %w", id, err)
	}
	var nonce [chacha20poly1305.NonceSizeX]byte
	chunkNonce(&nonce, o.header, uint32(chunks-1), true)
	if _, err := s.aead.Open(buf[:0], nonce[:], buf, o.ad); err != nil {
		return fmt.Errorf("%w: the last chunk (%d) fails authentication: the file is truncated or altered", ErrCorrupt, chunks-1)
	}
	return nil
}

// checkBodies runs checkBody on every body file at Open and notes the
// damaged ones. A body under another key is not damage (the key file may
// be put right); it is left for Open to report.
func (s *Spool) checkBodies(ids []string) error {
	for _, id := range ids {
		err := s.checkBody(id)
		switch {
		case err == nil, errors.Is(err, ErrWrongKey):
		case errors.Is(err, ErrCorrupt):
			s.bad[id] = true
			s.damage = append(s.damage, Damage{ID: id, File: id + msgSuffix, Reason: err.Error()})
		default:
			return fmt.Errorf("check body %s: %w", id, err)
		}
	}
	return nil
}
