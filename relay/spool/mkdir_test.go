package spool

import (
	"errors"
	"nhsrelay/internal/durable"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// A spool folder Open creates has every new name fsynced in its parent, top
// down; an existing one costs no fsync.
func TestOpenMakesNewFolderDurable(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "data", "spool")
	var synced []string
	record := func(d string) error { synced = append(synced, d); return durable.SyncDir(d) }
	if _, err := open(dir, testKey(t), record, Options{}); err != nil {
		t.Fatalf("open: %v", err)
	}
	if want := []string{root, filepath.Join(root, "data")}; !slices.Equal(synced, want) {
		t.Errorf("fsynced %v, want %v", synced, want)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("spool folder: %v, %v; want mode 0700", fi, err)
	}
	synced = nil
	if _, err := open(dir, testKey(t), record, Options{}); err != nil || len(synced) != 0 {
		t.Errorf("reopen: err %v, fsynced %v; want nil, none", err, synced)
	}
}

func TestOpenReportsFolderFsyncFailure(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	boom := errors.New("injected fsync failure")
	_, err := open(filepath.Join(root, "spool"), testKey(t), func(string) error { return boom }, Options{})
	if !errors.Is(err, boom) {
		t.Errorf("open error = %v, want the fsync failure", err)
	}
}

func TestOpenUnderAFile(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(filepath.Join(file, "spool"), testKey(t)); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("Open under a file: %v, want ENOTDIR", err)
	}
}
