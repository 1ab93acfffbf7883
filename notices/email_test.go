package notices_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"

	"nhsrelay/relay/relaytest"
)

// part is one leaf of a message, decoded.
type part struct {
	typ    string
	params map[string]string
	body   []byte
}

// parts parses a message with go-message and returns its top type and
// leaves.
func parts(t *testing.T, raw []byte) (string, []part, mail.Header) {
	t.Helper()
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("message.Read: %v", err)
	}
	top, _, _ := e.Header.ContentType()
	var out []part
	mr := e.MultipartReader()
	if mr == nil {
		t.Fatalf("message is %s, want multipart", top)
	}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		typ, params, _ := p.Header.ContentType()
		b, _ := io.ReadAll(p.Body)
		out = append(out, part{typ, params, b})
	}
	return top, out, mail.Header{Header: e.Header}
}

type icsEvent struct {
	UID, Organizer, Attendee, Location, Status string
	OrganizerCN                                string `json:"organizer_cn"`
	Sequence                                   int
	StartUTC                                   string `json:"start_utc"`
	EndUTC                                     string `json:"end_utc"`
	StartTZID                                  string `json:"start_tzid"`
}

type icsParsed struct {
	Method    string
	Events    []icsEvent
	Timezones []struct {
		TZID  string
		Rules []string
	}
}

// parseICS parses the calendar part with python3-icalendar.
func parseICS(t *testing.T, ics []byte) icsParsed {
	t.Helper()
	var p icsParsed
	if err := json.Unmarshal(run(t, ics, "/usr/bin/python3", "testdata/icscheck.py"), &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 1 {
		t.Fatalf("%d VEVENTs, want 1", len(p.Events))
	}
	return p
}

// checkEmail checks one delivered notice email and returns its parsed ICS.
func (h *harness) checkEmail(t *testing.T, m relaytest.Message, method string) icsParsed {
	t.Helper()
	if !m.TLS || len(m.To) != 1 || m.To[0] != "ada@example.org" || !strings.HasPrefix(m.From, "bounce+") || !strings.HasSuffix(m.From, "@"+hostname) {
		t.Fatalf("envelope %s → %v (TLS %v), want a VERP return path to ada@example.org over STARTTLS", m.From, m.To, m.TLS)
	}
	if bytes.Contains(m.Data, []byte("9434765919")) || bytes.Contains(m.Data, []byte("943 476 5919")) {
		t.Fatal("the NHS number is in the email")
	}
	// DKIM, verified by python3-dkim with the key from its TXT record.
	out := run(t, m.Data, "/usr/bin/python3", "testdata/dkimcheck.py", writeFile(t, "dkim.txt", []byte(h.txt)))
	if !bytes.Contains(out, []byte("notices2027._domainkey.riverside.nhs.example")) {
		t.Fatalf("dkim asked %s", out)
	}
	top, ps, hdr := parts(t, m.Data)
	if top != "multipart/alternative" || len(ps) != 3 {
		t.Fatalf("structure %s with %d parts, want multipart/alternative with 3", top, len(ps))
	}
	for i, want := range []string{"text/plain", "text/html", "text/calendar"} {
		if ps[i].typ != want {
			t.Fatalf("part %d is %s, want %s", i, ps[i].typ, want)
		}
	}
	if ps[2].params["method"] != method {
		t.Fatalf("text/calendar method=%q, want %s", ps[2].params["method"], method)
	}
	if v := hdr.Get("Auto-Submitted"); v != "auto-generated" {
		t.Errorf("Auto-Submitted = %q", v)
	}
	from, _ := hdr.AddressList("From")
	if len(from) != 1 || from[0].Address != fromAddr || from[0].Name != "Riverside Medical Practice" {
		t.Errorf("From = %v", from)
	}
	if !bytes.Contains(ps[0].body, []byte("Riverside Medical Practice")) || !bytes.Contains(ps[1].body, []byte("<h1")) {
		t.Error("text or HTML part lacks the organisation or a heading")
	}
	p := parseICS(t, ps[2].body)
	if p.Method != method {
		t.Fatalf("METHOD %s, want %s (as the Content-Type parameter)", p.Method, method)
	}
	ev := p.Events[0]
	if ev.Organizer != "mailto:"+fromAddr || ev.Attendee != "mailto:ada@example.org" || ev.OrganizerCN != "Riverside Medical Practice" {
		t.Fatalf("ORGANIZER %s (%s), ATTENDEE %s", ev.Organizer, ev.OrganizerCN, ev.Attendee)
	}
	if ev.StartTZID != "Europe/London" || len(p.Timezones) != 1 || len(p.Timezones[0].Rules) != 2 {
		t.Fatalf("TZID %s, VTIMEZONE %+v: want Europe/London with its two yearly rules", ev.StartTZID, p.Timezones)
	}
	if !strings.HasPrefix(ev.Location, "Riverside Medical Practice") {
		t.Fatalf("LOCATION %q", ev.Location)
	}
	return p
}

func TestNoticeEmailNewChangedCancelled(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	sf := springForward(h.clock.Now())
	// 09:30 on the Monday after the clocks go forward: BST, 08:30 UTC.
	after := time.Date(sf.Year(), sf.Month(), sf.Day()+1, 9, 30, 0, 0, sf.Location())
	code, out, _ := h.post(t, h.token, request("PAS-1001", after, nil))
	if code != http.StatusCreated {
		t.Fatalf("POST = %d %v, want 201", code, out)
	}
	msgs := h.sink.WaitMessages(t, 1)
	p := h.checkEmail(t, msgs[0], "REQUEST")
	ev := p.Events[0]
	if ev.Sequence != 0 || ev.StartUTC != after.UTC().Format("2006-01-02T15:04:05Z") || !strings.HasSuffix(ev.StartUTC, "T08:30:00Z") {
		t.Fatalf("first REQUEST: SEQUENCE %d, DTSTART %s; want 0 and 08:30 UTC (BST)", ev.Sequence, ev.StartUTC)
	}
	uid := ev.UID
	st := h.waitStatus(t, "PAS-1001", "status", "delivered")
	if st["email_status"] != "delivered" {
		t.Fatalf("email_status %v", st["email_status"])
	}

	// The same request again: the same notice, no second email.
	code, out, hdr := h.post(t, h.token, request("PAS-1001", after, nil))
	if code != http.StatusOK || hdr.Get("Idempotent-Replayed") != "true" || out["version"].(float64) != 0 {
		t.Fatalf("repeat POST = %d %v, want 200 replayed, version 0", code, out)
	}

	// Changed to the Friday before the clocks go forward: GMT, 09:30 UTC.
	before := time.Date(sf.Year(), sf.Month(), sf.Day()-2, 9, 30, 0, 0, sf.Location())
	code, out, _ = h.post(t, h.token, request("PAS-1001", before, func(r map[string]any) { r["kind"] = "changed" }))
	if code != http.StatusOK || out["version"].(float64) != 1 {
		t.Fatalf("changed POST = %d %v, want 200 version 1", code, out)
	}
	msgs = h.sink.WaitMessages(t, 2)
	ev = h.checkEmail(t, msgs[1], "REQUEST").Events[0]
	if ev.UID != uid || ev.Sequence != 1 || !strings.HasSuffix(ev.StartUTC, "T09:30:00Z") {
		t.Fatalf("changed: UID %s SEQUENCE %d DTSTART %s; want %s, 1, 09:30 UTC (GMT)", ev.UID, ev.Sequence, ev.StartUTC, uid)
	}

	// Cancelled: METHOD CANCEL, same UID, higher SEQUENCE.
	code, out, _ = h.post(t, h.token, request("PAS-1001", before, func(r map[string]any) { r["kind"] = "cancelled" }))
	if code != http.StatusOK || out["version"].(float64) != 2 {
		t.Fatalf("cancelled POST = %d %v", code, out)
	}
	msgs = h.sink.WaitMessages(t, 3)
	ev = h.checkEmail(t, msgs[2], "CANCEL").Events[0]
	if ev.UID != uid || ev.Sequence != 2 || ev.Status != "CANCELLED" {
		t.Fatalf("cancel: UID %s SEQUENCE %d STATUS %s", ev.UID, ev.Sequence, ev.Status)
	}
	st = h.waitStatus(t, "PAS-1001", "status", "delivered")
	if st["kind"] != "cancelled" || !hasStatus(st, "cancelled") {
		t.Fatalf("after cancel: %v", st)
	}

	// The reference reused for someone else.
	code, out, _ = h.post(t, h.token, request("PAS-1001", before, func(r map[string]any) {
		r["patient"].(map[string]any)["name"] = "Charles Babbage"
	}))
	if code != http.StatusConflict {
		t.Fatalf("reuse for another patient = %d %v, want 409", code, out)
	}
}

func hasStatus(st map[string]any, s string) bool {
	for _, e := range st["timeline"].([]any) {
		if e.(map[string]any)["status"] == s {
			return true
		}
	}
	return false
}

// Both sides of the autumn change: 00:30 and 01:30 happen once in BST, and
// 01:30 again in GMT (taken at its first occurrence).
func TestNoticeTimesAcrossAutumnChange(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	ab := autumnBack(h.clock.Now())
	for i, c := range []struct{ local, utc string }{
		{"00:30:00", "T23:30:00Z"}, // BST, the day before in UTC
		{"09:30:00", "T09:30:00Z"}, // GMT again
	} {
		ref := "AUT-" + c.local[:2]
		body := request(ref, ab, func(r map[string]any) {
			a := r["appointment"].(map[string]any)
			a["start"] = ab.Format("2006-01-02") + "T" + c.local
			a["end"] = ab.Format("2006-01-02") + "T" + c.local[:3] + "59:00"
		})
		if code, out, _ := h.post(t, h.token, body); code != http.StatusCreated {
			t.Fatalf("POST %s = %d %v", ref, code, out)
		}
		msgs := h.sink.WaitMessages(t, i+1)
		ev := h.checkEmail(t, msgs[i], "REQUEST").Events[0]
		if !strings.HasSuffix(ev.StartUTC, c.utc) {
			t.Errorf("%s local on %s: DTSTART %s UTC, want ...%s", c.local, ab.Format("2006-01-02"), ev.StartUTC, c.utc)
		}
	}
}
