package faxbridge

import (
	"fmt"
	"os"
	"path/filepath"
)

// syncDir makes a folder's entries (created, renamed) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// WriteFileDurable stores data as dir/name and returns only when the
// file's data and its folder entry are on stable storage: a hidden
// temporary file, fsync, rename, fsync of the folder. A reader that
// ignores names starting with "." never sees a partial file.
func WriteFileDurable(dir, name string, data []byte) (err error) {
	f, err := os.CreateTemp(dir, ".in-*.tmp")
	if err != nil {
		return fmt.Errorf("create in %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", name, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", name, err)
	}
	if err = os.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("rename %s: %w", name, err)
	}
	if err = syncDir(dir); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
