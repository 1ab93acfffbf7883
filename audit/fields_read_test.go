package audit

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestFieldsRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		words string
		f     Fields
	}{
		{"delivered to mailbox", Fields{"rcpt": "referrals.rx9@nhs.example", "hop": "maildir"}},
		{"", Fields{"reply": `250 2.0.0 Ok: queued as "X" {y}`, "tls": "TLS1.3"}},
		{"words with {braces} and k=v", Fields{"a": "b=c", "z": "\x00\n"}},
		{"no fields", nil},
	} {
		d := WithFields(tc.words, tc.f)
		words, f := SplitFields(d)
		if words != tc.words || !reflect.DeepEqual(f, tc.f) {
			t.Errorf("SplitFields(WithFields(%q, %v)) = %q, %v (detail %q)", tc.words, tc.f, words, f, d)
		}
	}
	if words, f := SplitFields("signed by ODS A81001 {not fields}"); f != nil || words != "signed by ODS A81001 {not fields}" {
		t.Errorf("SplitFields of plain words = %q, %v", words, f)
	}
}

func FuzzSplitFields(f *testing.F) {
	for _, s := range []string{"a {b=c}", `x {k="v w" j=1}`, "{}", "{=}", `{k="\"}`, "w {k=v}}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, fs := SplitFields(s)
		if fs == nil {
			return
		}
		w2, f2 := SplitFields(WithFields(words, fs))
		if w2 != words || !reflect.DeepEqual(f2, fs) {
			t.Fatalf("%q → %q %v → %q %v", s, words, fs, w2, f2)
		}
	})
}

func TestReadFromTails(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openLog(t, path)
	for i := 1; i <= 3; i++ {
		if err := l.Record(ev(i)); err != nil {
			t.Fatal(err)
		}
	}
	var seen []uint64
	collect := func(e Entry) error { seen = append(seen, e.Seq); return nil }
	last, err := ReadFrom(path, Entry{}, collect)
	if err != nil || last.Seq != 3 || !reflect.DeepEqual(seen, []uint64{1, 2, 3}) {
		t.Fatalf("ReadFrom(start) = %d, %v, seen %v", last.Seq, err, seen)
	}
	if err := l.Record(ev(4)); err != nil {
		t.Fatal(err)
	}
	// A line still being written is left for the next call.
	fh, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	fh.WriteString(`{"seq":5,"prev"`)
	fh.Close()
	seen = nil
	last, err = ReadFrom(path, last, collect)
	if err != nil || last.Seq != 4 || !reflect.DeepEqual(seen, []uint64{4}) {
		t.Fatalf("ReadFrom(after 3) = %d, %v, seen %v", last.Seq, err, seen)
	}
	// The file replaced by another chain: the reader must start again.
	other := writeLog(t, 2) // the same first records, cut short
	os.Rename(other, path)
	if _, err := ReadFrom(path, last, collect); !errors.Is(err, ErrRewound) {
		t.Fatalf("ReadFrom(replaced file) = %v, want ErrRewound", err)
	}
}
