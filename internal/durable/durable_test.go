package durable

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// syncLog records the folders synced and can fail one of them.
type syncLog struct {
	dirs []string
	fail string
}

func (l *syncLog) sync(dir string) error {
	if dir == l.fail {
		return errors.New("injected fsync failure")
	}
	l.dirs = append(l.dirs, dir)
	return SyncDir(dir)
}

func TestMkdirAll(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	var log syncLog
	deep := filepath.Join(root, "a", "b", "c")
	if err := MkdirAll(deep, 0o700, log.sync); err != nil {
		t.Fatal(err)
	}
	want := []string{root, filepath.Join(root, "a"), filepath.Join(root, "a", "b")}
	if !slices.Equal(log.dirs, want) {
		t.Errorf("fsynced %v, want the parents top down %v", log.dirs, want)
	}
	if fi, err := os.Stat(deep); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("made %v, %v; want a folder with mode 0700", fi, err)
	}
	log.dirs = nil
	if err := MkdirAll(deep, 0o700, log.sync); err != nil || len(log.dirs) != 0 {
		t.Errorf("existing folder: err %v, fsynced %v; want nil, none", err, log.dirs)
	}
	file := filepath.Join(root, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(filepath.Join(file, "x"), 0o700, log.sync); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("under a file: err = %v, want ENOTDIR", err)
	}
	log.fail = filepath.Join(root, "a")
	if err := MkdirAll(filepath.Join(root, "a", "new"), 0o700, log.sync); err == nil {
		t.Error("failed fsync of the parent not reported")
	}
}

func TestSyncDirMissing(t *testing.T) {
	t.Parallel()
	if err := SyncDir(filepath.Join(t.TempDir(), "gone")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("SyncDir(missing) = %v, want ErrNotExist", err)
	}
}
