//go:build linux

package audit

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"nhsrelay/audit/audittest"
)

// manualClock moves only when the test says so.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// A full disk stops the log; it says so (Err, metrics, an error log line)
// and takes records again by itself once there is space, with a record
// saying how long it was down; the file verifies whole.
func TestRecoversAfterDiskFull(t *testing.T) {
	t.Parallel()
	disk := audittest.SmallDisk(t, 256<<10)
	path := filepath.Join(disk, "audit.log")
	clock := &manualClock{t: time.Date(2026, 3, 4, 9, 0, 0, 0, time.UTC)}
	var logs audittest.Logs
	reg := prometheus.NewRegistry()
	l, err := OpenWith(path, Options{Now: clock.Now, Metrics: reg,
		Logger: logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 1; i <= 5; i++ {
		if err := l.Record(ev(i)); err != nil {
			t.Fatal(err)
		}
	}
	free := audittest.Fill(t, disk)
	var werr error
	for i := 6; i < 200 && werr == nil; i++ { // the last page may still take a few lines
		werr = l.Record(ev(i))
	}
	if !errors.Is(werr, syscall.ENOSPC) {
		t.Fatalf("Record on a full disk = %v, want ENOSPC", werr)
	}
	if err := l.Err(); err == nil {
		t.Fatal("Err = nil while the disk is full")
	}
	clock.Advance(2 * time.Second) // a retry is due, but the disk is still full
	if err := l.Record(ev(900)); err == nil {
		t.Fatal("Record succeeded on a full disk")
	}
	if got := value(l.m.failures); got < 2 {
		t.Errorf("write failures counted = %v, want at least 2", got)
	}
	if !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("no error logged for the failure:\n%s", logs.String())
	}

	free()
	if err := l.Err(); err == nil {
		t.Fatal("Err recovered before RetryEvery passed: it would hammer a failing disk")
	}
	clock.Advance(2 * time.Second)
	if err := l.Err(); err != nil {
		t.Fatalf("Err after space came back = %v, want nil", err)
	}
	if err := l.Record(ev(1000)); err != nil {
		t.Fatalf("Record after recovery = %v", err)
	}
	if got := value(l.m.recoveries); got != 1 {
		t.Errorf("recoveries = %v, want 1", got)
	}
	l.Close()
	n, err := Verify(path)
	if err != nil {
		t.Fatalf("Verify after recovery: %v", err)
	}
	raw, _ := os.ReadFile(path)
	if !bytes.Contains(raw, []byte(`"action":"audit.recovered"`)) || !bytes.Contains(raw, []byte(`"queue_id":"Q1000"`)) {
		t.Errorf("log after recovery lacks the recovered record or the next one:\n%s", raw)
	}
	if bytes.Contains(raw, []byte(`"queue_id":"Q900"`)) {
		t.Error("a record refused on the full disk is in the log")
	}
	t.Logf("%d records verify after recovery", n)
}

// A log whose chain is broken is not refused and not continued as if it
// were whole: Open logs an error, counts the break and starts a new
// segment linked to the last line; Verify names the break and the line
// where the new segment starts, and checks the segment.
func TestBrokenChainStartsLinkedSegment(t *testing.T) {
	t.Parallel()
	for name, edit := range map[string]func(ls [][]byte) [][]byte{
		"middle record edited": func(ls [][]byte) [][]byte {
			ls[2] = bytes.Replace(ls[2], []byte(`"outcome":"ok"`), []byte(`"outcome":"no"`), 1)
			return ls
		},
		"last record edited": func(ls [][]byte) [][]byte {
			ls[4] = bytes.Replace(ls[4], []byte(`"Q005"`), []byte(`"Q555"`), 1)
			return ls
		},
		"record removed": func(ls [][]byte) [][]byte { return append(ls[:1], ls[2:]...) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := writeLog(t, 5)
			writeLines(t, path, edit(lines(t, path)))
			var logs audittest.Logs
			reg := prometheus.NewRegistry()
			l, err := OpenWith(path, Options{Now: fixedClock(), Metrics: reg, Logger: logs.Logger()})
			if err != nil {
				t.Fatalf("Open of a broken log = %v, want a new segment", err)
			}
			if err := l.Record(ev(6)); err != nil {
				t.Fatal(err)
			}
			if got := value(l.m.breaks); got != 1 {
				t.Errorf("nhsrelay_audit_chain_breaks = %v, want 1", got)
			}
			l.Close()
			if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "CHAIN BROKEN") {
				t.Errorf("no loud error for the break:\n%s", logs.String())
			}
			ls := lines(t, path)
			_, err = Verify(path)
			var be *BrokenError
			if !errors.As(err, &be) || be.Resumed != len(ls)-1 {
				t.Fatalf("Verify = %v; want a break resumed at line %d", err, len(ls)-1)
			}
			if !strings.Contains(err.Error(), "new segment") || !bytes.Contains(ls[len(ls)-2], []byte(segmentAction)) {
				t.Errorf("Verify does not explain the segment: %v", err)
			}
			// Opening again finds the break already followed by a segment:
			// it warns, and continues that segment.
			logs = audittest.Logs{}
			l2, err := OpenWith(path, Options{Now: fixedClock(), Logger: logs.Logger()})
			if err != nil {
				t.Fatal(err)
			}
			if err := l2.Record(ev(7)); err != nil {
				t.Fatal(err)
			}
			l2.Close()
			if strings.Contains(logs.String(), "CHAIN BROKEN") || !strings.Contains(logs.String(), "level=WARN") {
				t.Errorf("second open: want a warning, not a new segment:\n%s", logs.String())
			}
			if got := lines(t, path); len(got) != len(ls)+1 {
				t.Errorf("second open wrote %d lines, want 1", len(got)-len(ls))
			}
			if _, err := Verify(path); !errors.As(err, &be) || be.Resumed != len(ls)-1 {
				t.Errorf("Verify after the second open = %v", err)
			}
		})
	}
}

// value reads a counter or gauge.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}
