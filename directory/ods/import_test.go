package ods

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"nhsrelay/audit"
	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestImportIdempotent(t *testing.T) {
	t.Parallel()
	d := directorytest.New(t)
	data := readFixture(t, "epraccur-sample.csv")
	rep, err := Import(t.Context(), d, bytes.NewReader(data), false)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if rep.Rows != 12 || len(rep.Added) != 12 || len(rep.Rejected) != 0 || !rep.Written {
		t.Errorf("first Import = %s, want 12 rows, 12 added, written", rep.Summary())
	}
	o, err := d.Organisation(t.Context(), "A81006")
	if err != nil || o.Name != `"DR SMITH & PARTNERS", THE CORNER HOUSE` || o.Source != directory.SourceODS || o.ImportedAt.IsZero() {
		t.Errorf("Organisation(A81006) = %+v, %v", o, err)
	}

	again, err := Import(t.Context(), d, bytes.NewReader(data), true)
	if err != nil {
		t.Fatalf("second Import: %v", err)
	}
	if len(again.Unchanged) != 12 || len(again.Added)+len(again.Updated)+len(again.Closed) != 0 {
		t.Errorf("second Import = %s, want 12 unchanged and nothing else", again.Summary())
	}
	o2, _ := d.Organisation(t.Context(), "A81006")
	if !o2.ImportedAt.Equal(o.ImportedAt) {
		t.Errorf("re-import changed ImportedAt %v → %v", o.ImportedAt, o2.ImportedAt)
	}
}

func TestImportClosureSuspendsEndpoints(t *testing.T) {
	t.Parallel()
	ep := directorytest.Verified("referrals@victoria.nhs.example", directory.NextHop{Kind: directory.HopMX})
	ep.ODS = "A81003"
	log := &directorytest.AuditLog{}
	d := directorytest.Open(t, func(c *directory.Config) { c.Audit = log }, ep)
	ctx := audit.WithActor(t.Context(), "ods-cron")

	rep, err := Import(ctx, d, bytes.NewReader(readFixture(t, "epraccur-sample.csv")), false)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if !slices.Equal(rep.Closed, []string{"A81003"}) || !slices.Equal(rep.Suspended, []string{"referrals@victoria.nhs.example"}) {
		t.Errorf("Import closed %v suspended %v, want [A81003] and the endpoint", rep.Closed, rep.Suspended)
	}
	got, err := d.Lookup(t.Context(), "referrals@victoria.nhs.example")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != directory.StatusSuspended || !strings.Contains(got.StatusReason, "closed on 2024-03-31") {
		t.Errorf("endpoint = %s (%q), want suspended with the closure date", got.Status, got.StatusReason)
	}
	actors := map[string]bool{}
	for _, ev := range log.Events() {
		actors[ev.Actor] = true
	}
	if !actors["ods-cron"] || len(actors) != 1 {
		t.Errorf("audit actors = %v, want only ods-cron", actors)
	}
}

func TestImportBadRows(t *testing.T) {
	t.Parallel()
	data := readFixture(t, "epraccur-bad-rows.csv")

	t.Run("lenient keeps the good rows", func(t *testing.T) {
		t.Parallel()
		d := directorytest.New(t)
		rep, err := Import(t.Context(), d, bytes.NewReader(data), false)
		if err != nil {
			t.Fatalf("Import: %v", err)
		}
		if !slices.Equal(rep.Added, []string{"A83001", "A83008"}) || len(rep.Rejected) != 6 {
			t.Errorf("Import = %s %v, want A83001 and A83008 added, 6 rejected", rep.Summary(), rep.Added)
		}
		var lines []int
		for _, r := range rep.Rejected {
			lines = append(lines, r.Line)
		}
		if !slices.Equal(lines, []int{2, 3, 4, 5, 6, 7}) {
			t.Errorf("rejected lines = %v, want 2..7", lines)
		}
	})

	t.Run("strict writes nothing", func(t *testing.T) {
		t.Parallel()
		d := directorytest.New(t)
		rep, err := Import(t.Context(), d, bytes.NewReader(data), true)
		var se *StrictError
		if !errors.As(err, &se) || len(se.Rejected) != 6 {
			t.Fatalf("Import(strict) error = %v, want *StrictError with 6 rows", err)
		}
		if rep.Written || len(rep.Rejected) != 6 {
			t.Errorf("Import(strict) report = %+v, want 6 rejected, not written", rep)
		}
		if !strings.Contains(err.Error(), "line 2: 4 columns, want 27") || !strings.Contains(err.Error(), "and 1 more") {
			t.Errorf("error text = %q, want the first rejected rows named", err)
		}
		if orgs := d.Organisations(t.Context(), ""); len(orgs) != 0 {
			t.Errorf("after a refused strict import the directory holds %d organisations, want 0", len(orgs))
		}
	})
}

func TestImportReadError(t *testing.T) {
	t.Parallel()
	d := directorytest.New(t)
	boom := errors.New("disk on fire")
	_, err := Import(t.Context(), d, &failingReader{data: []byte(row(nil) + "\n"), err: boom}, false)
	if !errors.Is(err, boom) {
		t.Fatalf("Import error = %v, want the read error", err)
	}
	if orgs := d.Organisations(t.Context(), ""); len(orgs) != 0 {
		t.Errorf("after a read error the directory holds %d organisations, want 0", len(orgs))
	}
}

// failingReader returns data, then err.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

// BenchmarkImport imports a generated national-sized file (12,000 rows):
// "first" into an empty directory (every row written), "again" into one
// that already holds it (the nightly case: nothing changes).
func BenchmarkImport(b *testing.B) {
	const rows = 12000
	data := nationalFile(rows)
	ctx := context.Background()
	b.Run("first", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			d := directorytest.New(b)
			b.StartTimer()
			rep, err := Import(ctx, d, bytes.NewReader(data), true)
			if err != nil || len(rep.Added) != rows {
				b.Fatalf("Import = %s, %v", rep.Summary(), err)
			}
		}
		b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("again", func(b *testing.B) {
		d := directorytest.New(b)
		if _, err := Import(ctx, d, bytes.NewReader(data), true); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			rep, err := Import(ctx, d, bytes.NewReader(data), true)
			if err != nil || len(rep.Unchanged) != rows {
				b.Fatalf("Import = %s, %v", rep.Summary(), err)
			}
		}
		b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}
