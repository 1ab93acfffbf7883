// Package durable holds the file-system steps every durable write in
// the server needs beyond fsyncing a file's data: fsyncing a folder so the
// names created, linked or removed in it survive a power cut (POSIX leaves
// directory entries in the page cache until the folder itself is synced;
// fsync(2) "does not necessarily ensure that the entry in the directory
// containing the file has also reached disk"), and creating folders so that
// each new name is made durable in its parent; and writing a small file
// atomically. The spool, Maildir delivery, the quarantine and serve's
// start-up share them. It sits at the module root (internal/) so that every
// layer may import it; it imports nothing of ours.
package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// SyncDir makes the directory's entries durable: open, fsync, close.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return d.Close()
}

// MkdirAll makes path and any missing parents with mode perm, one level at
// a time, and calls sync (SyncDir, or a test's recorder) on the parent of
// every folder it creates, so the new names are on stable storage when it
// returns: os.MkdirAll alone leaves a just-created spool or mailbox able to
// vanish in a power cut after a message in it was acknowledged. A Mkdir
// that loses a race (the folder appeared meanwhile) syncs the parent too,
// so this caller does not go on before the winner's name is durable.
//
// A folder that already exists is taken as durable: its creator synced its
// parent before using it. (A concurrent caller that merely sees a folder
// another caller is still making durable does not wait for it; on ext4 and
// XFS the fsync that later makes its own data durable commits the journal
// holding that mkdir as well.)
func MkdirAll(path string, perm fs.FileMode, sync func(dir string) error) error {
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
		if err := MkdirAll(parent, perm, sync); err != nil {
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

// WriteFile writes data to path atomically and durably with mode 0600: a
// temporary file in the same folder, fsync, rename over path, fsync of the
// folder. A crash leaves the old file or the new one, never a mix; the
// temporary file is named path's base + ".*.tmp" (spool.Open clears those).
func WriteFile(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".*.tmp") // 0600
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", f.Name(), err)
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	return SyncDir(dir)
}
