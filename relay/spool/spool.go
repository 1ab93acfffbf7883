package spool

import (
	"bytes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"nhsrelay/internal/durable"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
)

// ErrCorrupt means a spool file failed authentication or is malformed:
// tampered, truncated, reordered, or renamed from another ID.
var ErrCorrupt = errors.New("spool: corrupt or tampered message file")

// ErrExists means Write was given an ID that is already in the spool.
var ErrExists = errors.New("spool: message already exists")

// ErrBadID means an ID is empty, too long, or has characters other than
// ASCII letters, digits, '.', '_' and '-' (or starts with '.').
var ErrBadID = errors.New("spool: invalid message id")

const (
	msgSuffix = ".msg"
	tmpSuffix = ".tmp"
	maxIDLen  = 128
)

// Spool is a folder of encrypted message bodies. It is safe for concurrent use.
type Spool struct {
	dir  string
	aead cipher.AEAD
	kid  []byte
	bufs sync.Pool // *[]byte of sealedChunk bytes, one per Write in flight
	dirs groupSync

	smallMax int       // bodies up to this many bytes go to segments (0: none)
	segMax   int64     // segment size that closes it (segMax; tests lower it)
	small    sync.Pool // *[]byte of smallMax+1 bytes, for reading a body to seal
	mu       sync.Mutex
	index    map[string]loc  // small bodies in segments, by ID
	cur      *segment        // takes new records; nil until the first
	damage   []Damage        // found at Open (Damaged)
	bad      map[string]bool // body files Open found damaged: not listed, not opened
}

// Options tunes a spool.
type Options struct {
	// SmallMax is the size up to which bodies are appended to shared
	// segment files (seglog.go), whose fdatasync concurrent Writes share,
	// instead of each having a file of its own. 0 writes every body to its
	// own file; at most MaxSmall.
	SmallMax int
}

// MaxSmall is the largest Options.SmallMax: one chunk.
const MaxSmall = chunkSize

// Open opens the spool in dir with key (KeySize bytes), creating dir and
// any missing parents with mode 0700 if needed (each new name fsynced in
// its parent before Open returns), and removing stray temporary files that
// an interrupted Write left behind. Only one process may use a spool folder.
func Open(dir string, key []byte) (*Spool, error) {
	return open(dir, key, durable.SyncDir, Options{})
}

// OpenWith is Open with options. Whatever the options, a spool reads the
// bodies in both kinds of file, so they may change between runs.
func OpenWith(dir string, key []byte, opt Options) (*Spool, error) {
	if opt.SmallMax < 0 || opt.SmallMax > MaxSmall {
		return nil, fmt.Errorf("spool: open %s: SmallMax %d is not in 0..%d", dir, opt.SmallMax, MaxSmall)
	}
	return open(dir, key, durable.SyncDir, opt)
}

// open is Open with the fsync of folders it creates replaceable by tests.
func open(dir string, key []byte, sync func(dir string) error, opt Options) (*Spool, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("spool: open %s: key is %d bytes, want %d", dir, len(key), KeySize)
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("spool: open %s: %w", dir, err)
	}
	if err := durable.MkdirAll(dir, 0o700, sync); err != nil {
		return nil, fmt.Errorf("spool: open: %w", err)
	}
	s := &Spool{dir: dir, aead: aead, kid: keyID(key), smallMax: opt.SmallMax, segMax: segMax, index: map[string]loc{}, bad: map[string]bool{}}
	s.bufs.New = func() any { b := make([]byte, sealedChunk); return &b }
	s.small.New = func() any { b := make([]byte, s.smallMax+1); return &b }
	s.dirs.do = func() error { return durable.SyncDir(dir) }
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: open: %w", err)
	}
	var segs, bodies []string
	for _, e := range entries {
		if isSegment(e.Name()) && e.Type().IsRegular() {
			segs = append(segs, e.Name())
		}
		if id, ok := strings.CutSuffix(e.Name(), msgSuffix); ok && e.Type().IsRegular() && validID(id) == nil {
			bodies = append(bodies, id)
		}
		if strings.HasSuffix(e.Name(), tmpSuffix) && e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("spool: open: remove stray temp file: %w", err)
			}
		}
	}
	if err := s.loadSegments(segs); err != nil {
		return nil, fmt.Errorf("spool: open: %w", err)
	}
	if err := s.checkBodies(bodies); err != nil {
		return nil, fmt.Errorf("spool: open: %w", err)
	}
	return s, nil
}

// validID reports whether id is safe as a file name on every platform and
// cannot name anything outside the spool.
func validID(id string) error {
	if id == "" || len(id) > maxIDLen || id[0] == '.' {
		return fmt.Errorf("%w: %q", ErrBadID, id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q", ErrBadID, id)
		}
	}
	return nil
}

func (s *Spool) path(id string) string { return filepath.Join(s.dir, id+msgSuffix) }

// Write encrypts body and stores it under id, and returns the number of
// plaintext bytes written only once the file's data and its directory entry
// are on stable storage. RFC 5321 §6.1: after the 250 reply the message
// must not be lost "because the host later crashes".
//
// The sequence is temp file → write → fsync → close → link to <id>.msg →
// remove temp → fsync folder. A link, not a rename, so an existing message
// is never replaced (ErrExists). The folder fsync is shared: one fsync
// started after this Write's link covers it and every other Write linked
// before it began (group commit). On error nothing is left under id.
func (s *Spool) Write(id string, body io.Reader) (n int64, err error) {
	if err := validID(id); err != nil {
		return 0, err
	}
	final := s.path(id)
	if _, err := os.Lstat(final); err == nil { // fail early; the link below is the real check
		return 0, fmt.Errorf("spool: write %s: %w", id, ErrExists)
	}
	if s.smallMax > 0 {
		pp := s.small.Get().(*[]byte)
		defer s.small.Put(pp)
		m, sealed, small, err := s.sealSmall(id, body, *pp)
		if err != nil {
			return int64(m), fmt.Errorf("spool: write %s: %w", id, err)
		}
		if small {
			if err := s.writeSmall(id, sealed); err != nil {
				return int64(m), err
			}
			return int64(m), nil
		}
		body = io.MultiReader(bytes.NewReader((*pp)[:m]), body)
	}
	if s.has(id) {
		return 0, fmt.Errorf("spool: write %s: %w", id, ErrExists)
	}
	f, err := os.CreateTemp(s.dir, id+".*"+tmpSuffix) // mode 0600
	if err != nil {
		return 0, fmt.Errorf("spool: create %s: %w", id, err)
	}
	linked := false
	defer func() {
		if err != nil { // leave nothing half-written for recovery to find
			f.Close()
			os.Remove(f.Name())
			if linked {
				os.Remove(final)
			}
		}
	}()
	header, err := newHeader(s.kid)
	if err != nil {
		return 0, err
	}
	bp := s.bufs.Get().(*[]byte)
	n, err = seal(f, body, s.aead, header, append(header, id...), *bp)
	s.bufs.Put(bp)
	if err != nil {
		return n, fmt.Errorf("spool: write %s: %w", id, err)
	}
	if err = f.Sync(); err != nil { // 1. the file's data
		return n, fmt.Errorf("spool: fsync %s: %w", id, err)
	}
	if err = f.Close(); err != nil {
		return n, fmt.Errorf("spool: close %s: %w", id, err)
	}
	if err = os.Link(f.Name(), final); err != nil { // 2. the name, atomically, never over another
		if errors.Is(err, fs.ErrExist) {
			err = fmt.Errorf("spool: write %s: %w", id, ErrExists)
			return n, err
		}
		return n, fmt.Errorf("spool: link %s: %w", id, err)
	}
	linked = true
	if err = os.Remove(f.Name()); err != nil {
		return n, fmt.Errorf("spool: remove temp for %s: %w", id, err)
	}
	if err = s.dirs.sync(); err != nil { // 3. the directory entry, shared
		return n, fmt.Errorf("spool: fsync dir for %s: %w", id, err)
	}
	return n, nil
}

// Open returns a streaming, decrypting reader for id's body. A missing
// body is an error wrapping fs.ErrNotExist; a bad header one wrapping
// ErrCorrupt or ErrWrongKey. Reads return an error wrapping ErrCorrupt as
// soon as a chunk fails authentication, and never io.EOF before the
// authenticated last chunk: a reader that sees io.EOF has the whole body.
func (s *Spool) Open(id string) (io.ReadCloser, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	if s.isBad(id) {
		return nil, fmt.Errorf("spool: open %s: %w: damaged (found at start-up)", id, ErrCorrupt)
	}
	if r, c, ok := s.openSmall(id); ok {
		o, err := newOpener(r, c, s.aead, s.kid, id)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("spool: open %s: %w", id, err)
		}
		o.usePool(&s.bufs)
		return o, nil
	}
	f, err := os.Open(s.path(id))
	if err != nil {
		return nil, fmt.Errorf("spool: open %s: %w", id, err)
	}
	o, err := newOpener(f, f, s.aead, s.kid, id)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: open %s: %w", id, err)
	}
	o.usePool(&s.bufs)
	return o, nil
}

// Remove deletes id's body; a missing body is not an error. The removal is
// not fsynced: a body that reappears after a crash has no queue record and
// recovery removes it again.
func (s *Spool) Remove(id string) error {
	if err := validID(id); err != nil {
		return err
	}
	s.mu.Lock()
	small := s.removeLocked(id)
	delete(s.bad, id)
	s.mu.Unlock()
	if small {
		return nil
	}
	if err := os.Remove(s.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("spool: remove %s: %w", id, err)
	}
	return nil
}

// IDs lists, sorted, the IDs of the complete messages in the spool, for
// recovery to match against queue records. Temporary files never appear.
func (s *Spool) IDs() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("spool: list: %w", err)
	}
	var ids []string
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), msgSuffix)
		if ok && e.Type().IsRegular() && validID(id) == nil && !s.isBad(id) {
			ids = append(ids, id)
		}
	}
	s.mu.Lock()
	for id := range s.index {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// isBad reports whether Open found id's body file damaged.
func (s *Spool) isBad(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bad[id]
}

// has reports whether id is a small body.
func (s *Spool) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.index[id]
	return ok
}
