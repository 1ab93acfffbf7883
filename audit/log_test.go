package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func fixedClock() func() time.Time {
	t0 := time.Date(2026, 3, 4, 9, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	n := 0
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		n++
		return t0.Add(time.Duration(n) * time.Second)
	}
}

func openLog(t *testing.T, path string) *Log {
	t.Helper()
	l, err := Open(path, fixedClock())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func ev(i int) Event {
	return Event{Actor: "gp.a81001", Action: "accepted", QueueID: fmt.Sprintf("Q%03d", i),
		Endpoint: "cardio.rxx@nhs.example", Outcome: "ok"}
}

// writeLog writes n records to a new log and returns its path.
func writeLog(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openLog(t, path)
	for i := 1; i <= n; i++ {
		if err := l.Record(ev(i)); err != nil {
			t.Fatalf("Record %d: %v", i, err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func lines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(b, []byte("\n"))[:bytes.Count(b, []byte("\n"))]
}

func writeLines(t *testing.T, path string, ls [][]byte) {
	t.Helper()
	if err := os.WriteFile(path, bytes.Join(ls, nil), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestRecordAndVerify(t *testing.T) {
	t.Parallel()
	path := writeLog(t, 5)
	n, err := Verify(path)
	if err != nil || n != 5 {
		t.Fatalf("Verify = %d, %v; want 5, nil", n, err)
	}
	fi, _ := os.Stat(path)
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("log mode = %04o, want 0600", perm)
	}
	first := lines(t, path)[0]
	if !bytes.HasPrefix(first, []byte(`{"seq":1,"prev":"`+strings.Repeat("0", 64)+`","time":"2026-03-04T09:00:01Z",`)) {
		t.Fatalf("first line = %s", first)
	}
}

func TestEmptyLogVerifies(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	openLog(t, path).Close()
	if n, err := Verify(path); n != 0 || err != nil {
		t.Fatalf("Verify(empty) = %d, %v; want 0, nil", n, err)
	}
	if _, err := Verify(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("Verify(missing file) succeeded")
	}
}

func TestChainContinuesAcrossReopen(t *testing.T) {
	t.Parallel()
	path := writeLog(t, 3)
	l := openLog(t, path)
	if seq, _ := l.Head(); seq != 3 {
		t.Fatalf("Head after reopen: seq %d, want 3", seq)
	}
	if err := l.Record(ev(4)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if n, err := Verify(path); err != nil || n != 4 {
		t.Fatalf("Verify = %d, %v; want 4, nil", n, err)
	}
}

func TestOnlyOneWriter(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	openLog(t, path)
	if l, err := Open(path, nil); err == nil {
		l.Close()
		t.Fatal("second Open of a log in use succeeded")
	}
}

func TestRecordAfterClose(t *testing.T) {
	t.Parallel()
	l := openLog(t, filepath.Join(t.TempDir(), "audit.log"))
	l.Close()
	if err := l.Record(ev(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Record after Close = %v, want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close = %v, want nil", err)
	}
}

func TestTornLastLineIsCut(t *testing.T) {
	t.Parallel()
	path := writeLog(t, 3)
	ls := lines(t, path)
	torn := append(bytes.Clone(ls[0]), ls[1]...)
	torn = append(torn, ls[2][:20]...) // a crash mid-write of record 3
	if err := os.WriteFile(path, torn, 0o600); err != nil {
		t.Fatal(err)
	}
	var be *BrokenError
	if _, err := Verify(path); !errors.As(err, &be) || be.Line != 3 {
		t.Fatalf("Verify(torn) = %v, want BrokenError at line 3", err)
	}
	l := openLog(t, path)
	if err := l.Record(ev(3)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if n, err := Verify(path); err != nil || n != 3 {
		t.Fatalf("Verify after reopen = %d, %v; want 3, nil", n, err)
	}
}

func TestVerifyNamesFirstBrokenLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		edit func(ls [][]byte) [][]byte
		line int
		seq  uint64
	}{
		{"edit field", func(ls [][]byte) [][]byte {
			ls[2] = bytes.Replace(ls[2], []byte(`"outcome":"ok"`), []byte(`"outcome":"no"`), 1)
			return ls
		}, 3, 3},
		{"edit field and its hash", func(ls [][]byte) [][]byte {
			var r record
			json.Unmarshal(ls[2], &r)
			r.Outcome = "refused"
			line, _ := encode(r)
			ls[2] = append(line, '\n')
			return ls
		}, 4, 4},
		{"edit last record", func(ls [][]byte) [][]byte {
			ls[5] = bytes.Replace(ls[5], []byte(`"Q006"`), []byte(`"Q666"`), 1)
			return ls
		}, 6, 6},
		{"add a key", func(ls [][]byte) [][]byte {
			ls[1] = bytes.Replace(ls[1], []byte(`{"seq"`), []byte(`{"body":"x","seq"`), 1)
			return ls
		}, 2, 2},
		{"reformat", func(ls [][]byte) [][]byte {
			ls[1] = bytes.Replace(ls[1], []byte(`,"prev"`), []byte(`, "prev"`), 1)
			return ls
		}, 2, 2},
		{"remove line", func(ls [][]byte) [][]byte { return slices.Delete(ls, 3, 4) }, 4, 5},
		{"remove first line", func(ls [][]byte) [][]byte { return ls[1:] }, 1, 2},
		{"insert copy", func(ls [][]byte) [][]byte { return slices.Insert(ls, 2, ls[1]) }, 3, 2},
		{"swap lines", func(ls [][]byte) [][]byte { ls[1], ls[2] = ls[2], ls[1]; return ls }, 2, 3},
		{"truncate mid-line", func(ls [][]byte) [][]byte { ls[5] = ls[5][:len(ls[5])-10]; return ls }, 6, 0},
		{"drop newline", func(ls [][]byte) [][]byte { ls[5] = ls[5][:len(ls[5])-1]; return ls }, 6, 0},
		{"blank line", func(ls [][]byte) [][]byte { return slices.Insert(ls, 2, []byte("\n")) }, 3, 0},
		{"insert forged record", func(ls [][]byte) [][]byte {
			line, _ := encode(record{Seq: 3, Prev: strings.Repeat("0", 64), Event: ev(99)})
			return slices.Insert(ls, 2, append(line, '\n'))
		}, 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeLog(t, 6)
			writeLines(t, path, tc.edit(lines(t, path)))
			n, err := Verify(path)
			var be *BrokenError
			if !errors.As(err, &be) {
				t.Fatalf("Verify = %d, %v; want a *BrokenError", n, err)
			}
			raw, _ := os.ReadFile(path)
			if f, _ := verify(bytes.NewReader(raw), true); f.records != n || f.err().Error() != err.Error() {
				t.Errorf("Open's fast verify = %d, %v; Verify = %d, %v", f.records, f.err(), n, err)
			}
			if be.Line != tc.line || be.Seq != tc.seq || n != tc.line-1 {
				t.Fatalf("Verify = %d, line %d seq %d (%s); want %d, line %d seq %d",
					n, be.Line, be.Seq, be.Reason, tc.line-1, tc.line, tc.seq)
			}
		})
	}
}

func TestConcurrentRecord(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openLog(t, path)
	const workers, each = 8, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if err := l.Record(ev(w*each + i)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	l.Close()
	if n, err := Verify(path); err != nil || n != workers*each {
		t.Fatalf("Verify = %d, %v; want %d, nil", n, err, workers*each)
	}
	seen := map[string]bool{}
	for _, line := range lines(t, path) {
		var r record
		json.Unmarshal(line, &r)
		seen[r.QueueID] = true
	}
	if len(seen) != workers*each {
		t.Fatalf("%d distinct events in the log, want %d", len(seen), workers*each)
	}
}

// A record holds the chain's three keys and the Event's fields, nothing else;
// hostile text in a field stays inside that field and on one line.
func TestRecordHoldsOnlyEventFields(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openLog(t, path)
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("BST", 3600))
	in := Event{Time: at, Actor: "a\n{\"seq\":9}", Action: "delivered", QueueID: "Q1",
		Endpoint: "e", Outcome: "ok", Detail: "<b>\"quoted\"</b>\r\n\x00\xff"}
	if err := l.Record(in); err != nil {
		t.Fatal(err)
	}
	l.Close()
	ls := lines(t, path)
	if len(ls) != 1 {
		t.Fatalf("one Record wrote %d lines", len(ls))
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(ls[0], &keys); err != nil {
		t.Fatal(err)
	}
	var got []string
	for k := range keys {
		got = append(got, k)
	}
	slices.Sort(got)
	want := []string{"action", "actor", "detail", "endpoint", "hash", "outcome", "prev", "queue_id", "seq", "time"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("record keys = %q, want %q", got, want)
	}
	var r record
	json.Unmarshal(ls[0], &r)
	if !r.Time.Equal(at) || r.Actor != in.Actor || r.Time.Location() != time.UTC {
		t.Fatalf("read back %+v", r.Event)
	}
	if n, err := Verify(path); err != nil || n != 1 {
		t.Fatalf("Verify = %d, %v", n, err)
	}
}

func TestRecordTooLong(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openLog(t, path)
	if err := l.Record(Event{Action: "x", Detail: strings.Repeat("d", maxLine)}); err == nil {
		t.Fatal("Record of an over-long event succeeded")
	}
	if err := l.Record(ev(1)); err != nil { // the log carries on
		t.Fatal(err)
	}
	l.Close()
	if n, err := Verify(path); err != nil || n != 1 {
		t.Fatalf("Verify = %d, %v; want 1, nil", n, err)
	}
}

// FuzzVerify checks arbitrary files: Verify must never panic, must name a
// line inside the file, and whatever it accepts must continue cleanly.
func FuzzVerify(f *testing.F) {
	var buf bytes.Buffer
	head := genesis
	for i := 1; i <= 3; i++ {
		line, _ := encode(record{Seq: uint64(i), Prev: fmt.Sprintf("%x", head), Event: ev(i)})
		buf.Write(line)
		buf.WriteByte('\n')
		f.Add(bytes.Clone(buf.Bytes()))
		head = sha256Sum(line)
	}
	f.Add([]byte(""))
	f.Add([]byte("\n"))
	f.Add([]byte(`{"seq":1}` + "\n"))
	f.Add(buf.Bytes()[:buf.Len()-5])
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := verify(bytes.NewReader(data), false)
		if err == nil {
			err = c.err()
		}
		// Open's fast check finds the same records and breaks.
		f, ferr := verify(bytes.NewReader(data), true)
		if (ferr == nil) != (err == nil || errors.As(err, new(*BrokenError))) ||
			f.records != c.records || fmt.Sprint(f.err()) != fmt.Sprint(c.err()) || f.broken != c.broken || f.lastLine != c.lastLine {
			t.Fatalf("fast verify: %d records, %v; full: %d records, %v", f.records, f.err(), c.records, c.err())
		}
		n := c.records
		lineCount := bytes.Count(data, []byte("\n"))
		var be *BrokenError
		switch {
		case err == nil:
			if n != lineCount || (len(data) > 0 && data[len(data)-1] != '\n') {
				t.Fatalf("accepted %d records from %d lines", n, lineCount)
			}
		case errors.As(err, &be):
			if be.Line < 1 || be.Line > lineCount+1 || be.Resumed == 0 && len(c.breaks) == 1 && n != be.Line-1 {
				t.Fatalf("broken at line %d with %d records, file has %d lines", be.Line, n, lineCount)
			}
		default:
			t.Fatalf("Verify of in-memory data: non-chain error %v", err)
		}
	})
}

// TestErrAfterClose: Err is nil while the log works and ErrClosed after Close.
func TestErrAfterClose(t *testing.T) {
	t.Parallel()
	l := openLog(t, filepath.Join(t.TempDir(), "audit.log"))
	if err := l.Err(); err != nil {
		t.Fatalf("Err on a new log = %v, want nil", err)
	}
	if err := l.Record(ev(1)); err != nil {
		t.Fatal(err)
	}
	if err := l.Err(); err != nil {
		t.Fatalf("Err after a good Record = %v, want nil", err)
	}
	l.Close()
	if err := l.Err(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Err after Close = %v, want ErrClosed", err)
	}
	if err := l.Record(ev(2)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Record after Close = %v, want ErrClosed", err)
	}
}
