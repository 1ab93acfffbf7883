package boltstore_test

import (
	"path/filepath"
	"testing"

	"nhsrelay/directory"
	"nhsrelay/directory/boltstore"
	"nhsrelay/directory/storetest"
)

func mustOpen(t *testing.T, path string) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) directory.Store {
		return mustOpen(t, filepath.Join(t.TempDir(), "directory.db"))
	})
}

// TestReopen checks that what Apply returned from is there after Close.
func TestReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "directory.db")
	s, err := boltstore.Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	o := directory.Organisation{ODS: "A81001", Name: "Test Practice", Status: directory.OrgActive}
	if err := s.Apply(t.Context(), directory.Batch{Organisations: []directory.Organisation{o}}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	snap, err := mustOpen(t, path).Load(t.Context())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(snap.Organisations) != 1 || snap.Organisations[0].Name != o.Name || snap.Revision != 1 {
		t.Fatalf("after reopen: %+v, want %s at revision 1", snap, o.Name)
	}
}

// TestLocked checks a second opener fails instead of hanging.
func TestLocked(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "directory.db")
	mustOpen(t, path)
	if s, err := boltstore.Open(path); err == nil {
		s.Close()
		t.Fatal("second Open of a locked file succeeded, want a timeout error")
	}
}
