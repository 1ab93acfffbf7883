// Package storetest is the contract every notices.Store passes: Run it
// from each implementation's tests with a function that opens a new,
// empty store (and closes it in t.Cleanup).
package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"nhsrelay/notices"
)

// Run checks a Store.
func Run(t *testing.T, open func(t *testing.T) notices.Store) {
	t.Run("GetMissing", func(t *testing.T) {
		t.Parallel()
		if _, err := open(t).Get(t.Context(), "nope"); !errors.Is(err, notices.ErrNotFound) {
			t.Fatalf("Get(missing) error = %v, want ErrNotFound", err)
		}
	})
	t.Run("CreateThenGet", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		n := sample("REF-1")
		if err := s.Create(t.Context(), n); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(t.Context(), "REF-1")
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != n.ID || got.Appointment.PatientName != n.Appointment.PatientName || !got.Appointment.Start.Equal(n.Appointment.Start) {
			t.Fatalf("Get = %+v, want %+v", got, n)
		}
		if err := s.Create(t.Context(), n); !errors.Is(err, notices.ErrExists) {
			t.Fatalf("second Create error = %v, want ErrExists", err)
		}
	})
	t.Run("UpdateAndRefusal", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		if err := s.Create(t.Context(), sample("R")); err != nil {
			t.Fatal(err)
		}
		if err := s.Update(t.Context(), "R", func(n *notices.Notice) error { n.Sequence = 3; return nil }); err != nil {
			t.Fatal(err)
		}
		no := errors.New("refused")
		if err := s.Update(t.Context(), "R", func(n *notices.Notice) error { n.Sequence = 9; return no }); !errors.Is(err, no) {
			t.Fatalf("Update refusal = %v, want the fn's error", err)
		}
		if n, _ := s.Get(t.Context(), "R"); n.Sequence != 3 {
			t.Fatalf("Sequence = %d, want 3 (the refused change must not be written)", n.Sequence)
		}
		if err := s.Update(t.Context(), "missing", func(*notices.Notice) error { return nil }); !errors.Is(err, notices.ErrNotFound) {
			t.Fatalf("Update(missing) = %v, want ErrNotFound", err)
		}
	})
	t.Run("ConcurrentUpdates", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		if err := s.Create(t.Context(), sample("C")); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				if err := s.Update(t.Context(), "C", func(n *notices.Notice) error { n.EventSeq++; return nil }); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if n, _ := s.Get(t.Context(), "C"); n.EventSeq != 20 {
			t.Fatalf("EventSeq = %d after 20 concurrent increments, want 20", n.EventSeq)
		}
	})
	t.Run("EachInOrder", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		for _, r := range []string{"b", "a", "c"} {
			if err := s.Create(t.Context(), sample(r)); err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		if err := s.Each(t.Context(), func(n notices.Notice) bool { got = append(got, n.Reference); return len(got) < 2 }); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != "[a b]" {
			t.Fatalf("Each = %v, want [a b] (ordered, stopped when fn said so)", got)
		}
	})
	t.Run("CredentialsAndRuns", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		for _, id := range []string{"nc-b", "nc-a"} {
			if err := s.PutCredential(t.Context(), notices.Credential{ID: id, Name: id, Organisations: []string{"A81001"}}); err != nil {
				t.Fatal(err)
			}
		}
		cs, err := s.Credentials(t.Context())
		if err != nil || len(cs) != 2 || cs[0].ID != "nc-a" {
			t.Fatalf("Credentials = %+v, %v; want nc-a, nc-b", cs, err)
		}
		if _, err := s.Run(t.Context(), "none"); !errors.Is(err, notices.ErrNotFound) {
			t.Fatalf("Run(missing) = %v, want ErrNotFound", err)
		}
		r := notices.PrintRun{ID: "run-1", References: []string{"a"}, PDF: []byte("%PDF")}
		if err := s.PutRun(t.Context(), r); err != nil {
			t.Fatal(err)
		}
		got, err := s.Run(t.Context(), "run-1")
		if err != nil || string(got.PDF) != "%PDF" || len(got.References) != 1 {
			t.Fatalf("Run = %+v, %v", got, err)
		}
		if rs, err := s.Runs(t.Context()); err != nil || len(rs) != 1 {
			t.Fatalf("Runs = %d, %v; want 1", len(rs), err)
		}
	})
}

func sample(ref string) notices.Notice {
	start := time.Date(2027, 3, 28, 9, 30, 0, 0, time.UTC)
	return notices.Notice{ID: "id-" + ref, Reference: ref, Organisation: "A81001", Kind: notices.KindNew,
		Appointment: notices.Appointment{PatientName: "Ada Lovelace", Email: "ada@example.org",
			Start: start, End: start.Add(30 * time.Minute), TimeZone: "Europe/London", Location: "Riverside"}}
}
