package boltstore_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"nhsrelay/notices"
	"nhsrelay/notices/boltstore"
	"nhsrelay/notices/storetest"
)

var testKey = bytes.Repeat([]byte{7}, 32)

func TestContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) notices.Store {
		s, err := boltstore.Open(filepath.Join(t.TempDir(), "notices.db"), testKey)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// Patients' names must not be readable in the file.
func TestSealedAtRest(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "notices.db")
	s, err := boltstore.Open(path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Create(t.Context(), notices.Notice{Reference: "R1", Appointment: notices.Appointment{PatientName: "Zebedee Quixote"}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("Zebedee")) {
		t.Fatal("patient name found in clear in the store file")
	}
	other, err := boltstore.Open(path, bytes.Repeat([]byte{8}, 32))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Get(t.Context(), "R1"); err == nil {
		t.Fatal("record opened with the wrong key")
	}
}
