package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// mkdirAllSync makes path and any missing parents with mode perm, one level
// at a time, and fsyncs the parent of every folder it creates (also when a
// Mkdir loses a race to a concurrent creator), so that a spool folder made
// by Open cannot vanish in a power cut with the bodies acknowledged in it:
// os.MkdirAll makes the names but leaves them in the page cache. A folder
// that already exists is taken as durable (its creator fsynced its parent).
// relay/maildir has the same helper for mailboxes.
func mkdirAllSync(path string, perm fs.FileMode, sync func(dir string) error) error {
	path = filepath.Clean(path)
	fi, err := os.Stat(path)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("mkdir %s: %w", path, syscall.ENOTDIR)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("mkdir %s: %w", path, err)
	}
	parent := filepath.Dir(path)
	if parent != path {
		if err := mkdirAllSync(parent, perm, sync); err != nil {
			return err
		}
	}
	if err := os.Mkdir(path, perm); err != nil {
		if fi, serr := os.Stat(path); serr != nil || !fi.IsDir() {
			return fmt.Errorf("mkdir %s: %w", path, err)
		}
	}
	if err := sync(parent); err != nil {
		return fmt.Errorf("fsync %s after creating %s: %w", parent, filepath.Base(path), err)
	}
	return nil
}
