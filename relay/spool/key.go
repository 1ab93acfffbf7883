package spool

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"nhsrelay/internal/durable"
	"os"
	"path/filepath"
)

// KeySize is the length of a spool key in bytes (XChaCha20-Poly1305's key).
const KeySize = 32

// ErrKeyPermissions means a key file can be read or written by someone
// other than its owner; LoadKey refuses it rather than trust it.
var ErrKeyPermissions = errors.New("spool: key file must be accessible only by its owner (chmod 600)")

// CreateKey writes KeySize fresh random bytes to a new file at path with mode
// 0600 and makes the file and its directory entry durable. It never
// overwrites: if path exists it fails with an error wrapping fs.ErrExist,
// because replacing a key makes every spooled body unreadable.
func CreateKey(path string) (err error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("spool: create key: random: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("spool: create key: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path) // a half-written key must not be loaded later
		}
	}()
	if _, err = f.Write(key); err != nil {
		return fmt.Errorf("spool: write key %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("spool: fsync key %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("spool: close key %s: %w", path, err)
	}
	if err = durable.SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("spool: fsync dir of key %s: %w", path, err)
	}
	return nil
}

// LoadKey reads the key file at path. It refuses a file that group or
// others may access (ErrKeyPermissions), anything that is not a regular
// file, and a file that is not exactly KeySize bytes.
func LoadKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("spool: load key: %w", err)
	}
	defer f.Close()
	// Stat the open file, not the path, so the checked file is the read one.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("spool: load key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("spool: load key %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("spool: load key %s: mode %04o: %w", path, perm, ErrKeyPermissions)
	}
	key, err := io.ReadAll(io.LimitReader(f, KeySize+1))
	if err != nil {
		return nil, fmt.Errorf("spool: read key %s: %w", path, err)
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("spool: load key %s: want exactly %d bytes, file has %s", path, KeySize, sizeWords(len(key)))
	}
	return key, nil
}

func sizeWords(n int) string {
	if n > KeySize {
		return "more"
	}
	return fmt.Sprint(n)
}
