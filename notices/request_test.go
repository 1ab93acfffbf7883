package notices

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidNHSNumber(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"9434765919": true, "943 476 5919": true, "943-476-5919": true, "4010232137": true,
		"9434765918": false, "943476591": false, "94347659190": false, "94347659a9": false, "": false,
		"1000000000": false, // check digit would be 10: never valid
	} {
		if got := ValidNHSNumber(s); got != want {
			t.Errorf("ValidNHSNumber(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestWindow(t *testing.T) {
	t.Parallel()
	w, err := ParseWindow("08:00-20:00")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time { x, _ := time.ParseInLocation("2006-01-02 15:04", s, london); return x }
	for _, c := range []struct{ now, next string }{
		{"2027-06-01 07:59", "2027-06-01 08:00"}, // BST
		{"2027-06-01 12:00", "2027-06-01 12:00"},
		{"2027-06-01 20:00", "2027-06-02 08:00"},
		{"2027-01-15 23:30", "2027-01-16 08:00"}, // GMT
	} {
		if got := w.Next(at(c.now)); !got.Equal(at(c.next)) {
			t.Errorf("Next(%s) = %s, want %s", c.now, got.In(london), c.next)
		}
	}
	for _, bad := range []string{"8-20", "08:00-08:00", "08:00", "25:00-26:00"} {
		if _, err := ParseWindow(bad); err == nil {
			t.Errorf("ParseWindow(%q) accepted", bad)
		}
	}
}

func TestSpringForwardGapRefused(t *testing.T) {
	t.Parallel()
	req := Request{Reference: "R", Organisation: "A81001", Kind: "new",
		Patient:     PatientRequest{Name: "A", Email: "a@example.org"},
		Appointment: AppointmentRequest{Start: "2027-03-28T01:30:00", End: "2027-03-28T03:00:00", Location: "X"}}
	_, _, err := req.Validate(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Fields[0].Field != "appointment.start" {
		t.Fatalf("01:30 on the day the clocks go forward: %v, want appointment.start refused", err)
	}
}

// The JSON intake never panics; what it accepts validates the same way
// twice and its digest is stable.
func FuzzDecodeValidate(f *testing.F) {
	for _, s := range []string{
		`{"reference":"PAS-1","organisation":"A81001","kind":"new","patient":{"name":"Ada","email":"ada@example.org","nhs_number":"9434765919"},"appointment":{"start":"2027-06-01T09:30:00","end":"2027-06-01T10:00:00","location":"Leeds"}}`,
		`{"reference":"PAS-2","organisation":"A81001","kind":"cancelled","patient":{"name":"Ada","address":{"lines":["1 A St"],"postcode":"LS1 4AP"}},"appointment":{"start":"2027-06-01T09:30:00+01:00","end":"2027-06-01T10:00:00Z","time_zone":"Europe/Paris","location":"x"}}`,
		`{}`, `[]`, `null`, `{"reference":1}`, `{"patient":{"address":{"lines":null}}}`, "{\"reference\":\"\u0000\"}",
		`{"appointment":{"start":"2027-03-28T01:30:00","end":"2027-03-28T01:00"}}`, `{"a":1}{"b":2}`, `{"reference":"x"`,
	} {
		f.Add([]byte(s))
	}
	now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeRequest(bytes.NewReader(data))
		if err != nil {
			return
		}
		k1, a1, err1 := req.Validate(now)
		k2, a2, err2 := req.Validate(now)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("Validate not stable: %v then %v", err1, err2)
		}
		if err1 != nil {
			var ve *ValidationError
			if !errors.As(err1, &ve) || len(ve.Fields) == 0 {
				t.Fatalf("a refusal without fields: %v", err1)
			}
			return
		}
		if !bytes.Equal(canonical(k1, a1), canonical(k2, a2)) {
			t.Fatal("digest content not stable")
		}
		if a1.Email == "" && a1.Address == nil || !a1.End.After(a1.Start) || strings.TrimSpace(a1.PatientName) == "" {
			t.Fatalf("accepted an incomplete notice: %+v", a1)
		}
	})
}
