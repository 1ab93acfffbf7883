package maildir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// mkdirAllSync makes path and any missing parents with mode perm, one level
// at a time, and fsyncs the parent of every folder it creates, so the new
// names are on stable storage when it returns: os.MkdirAll alone leaves a
// just-created mailbox able to vanish in a power cut after its first
// message was reported delivered. A Mkdir that loses a race (the folder
// appeared meanwhile) fsyncs the parent too, so this caller does not go on
// before the winner's name is durable.
//
// A folder that already exists is taken as durable: its creator fsynced
// its parent before using it. (A concurrent caller that merely sees a
// folder another caller is still making durable does not wait for it; on
// ext4 and XFS the fsync that later makes its own message durable commits
// the journal holding that mkdir as well.)
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

// syncDir makes the directory's entries (names created, linked, removed in
// it) durable: open, fsync, close.
func syncDir(dir string) error {
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
