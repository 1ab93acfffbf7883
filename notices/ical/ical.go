// Package ical writes the one kind of iCalendar object appointment
// notices need: a VCALENDAR with METHOD REQUEST or CANCEL (iTIP, RFC 5546)
// holding one VEVENT (RFC 5545), with a full VTIMEZONE for Europe/London
// (its yearly daylight-saving rules) when the appointment is there.
//
// Lines end in CRLF and are folded at 75 octets (RFC 5545 §3.1), TEXT
// values are escaped (§3.3.11), and parameter values that hold ':' ';'
// or ',' are quoted (§3.2).
package ical

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Method is the iTIP method (RFC 5546 §1.4): REQUEST for a new or changed
// appointment, CANCEL for a cancelled one.
type Method string

const (
	Request Method = "REQUEST"
	Cancel  Method = "CANCEL"
)

// Person is an ORGANIZER or ATTENDEE.
type Person struct {
	Name  string
	Email string
}

// Event is one appointment.
type Event struct {
	Method      Method
	UID         string // stable for the appointment's whole life
	Sequence    int    // RFC 5545 §3.8.7.4: higher with each revision
	Stamp       time.Time
	Start, End  time.Time // their Location decides TZID (Europe/London) or UTC
	Summary     string
	Location    string
	Description string
	URL         string
	Organizer   Person
	Attendee    Person
}

// Write writes e as a VCALENDAR.
func Write(w io.Writer, e Event) error {
	if e.Method != Request && e.Method != Cancel {
		return fmt.Errorf("ical: method %q: want REQUEST or CANCEL", e.Method)
	}
	if e.UID == "" || e.Organizer.Email == "" || e.Attendee.Email == "" {
		return errors.New("ical: UID, ORGANIZER and ATTENDEE are required (RFC 5546 §3.2.2)")
	}
	if !e.End.After(e.Start) {
		return errors.New("ical: DTEND must be after DTSTART")
	}
	b := &builder{}
	b.line("BEGIN:VCALENDAR")
	b.line("VERSION:2.0")
	b.line("PRODID:-//NHS Relay//Appointment notices//EN")
	b.line("CALSCALE:GREGORIAN")
	b.line("METHOD:" + string(e.Method)) // RFC 5546 §2: matches the Content-Type method parameter
	london := e.Start.Location().String() == "Europe/London"
	if london {
		b.londonTimezone()
	}
	b.line("BEGIN:VEVENT")
	b.line("UID:" + text(e.UID))
	b.line(fmt.Sprintf("SEQUENCE:%d", e.Sequence))
	b.line("DTSTAMP:" + utc(e.Stamp))
	if london {
		b.line("DTSTART;TZID=Europe/London:" + e.Start.Format("20060102T150405"))
		b.line("DTEND;TZID=Europe/London:" + e.End.In(e.Start.Location()).Format("20060102T150405"))
	} else {
		b.line("DTSTART:" + utc(e.Start))
		b.line("DTEND:" + utc(e.End))
	}
	b.line("SUMMARY:" + text(e.Summary))
	if e.Location != "" {
		b.line("LOCATION:" + text(e.Location))
	}
	if e.Description != "" {
		b.line("DESCRIPTION:" + text(e.Description))
	}
	if e.URL != "" {
		b.line("URL:" + e.URL)
	}
	b.line("ORGANIZER;CN=" + param(e.Organizer.Name) + ":mailto:" + e.Organizer.Email)
	b.line("ATTENDEE;CN=" + param(e.Attendee.Name) + ";ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=FALSE:mailto:" + e.Attendee.Email)
	if e.Method == Cancel {
		b.line("STATUS:CANCELLED") // RFC 5546 §3.2.5: the whole event is cancelled
	} else {
		b.line("STATUS:CONFIRMED")
		b.line("TRANSP:OPAQUE")
	}
	b.line("END:VEVENT")
	b.line("END:VCALENDAR")
	_, err := io.WriteString(w, b.String())
	return err
}

// londonTimezone is Europe/London as it has been since 1996: BST from
// 01:00 UTC on the last Sunday of March, GMT from 01:00 UTC (02:00 BST)
// on the last Sunday of October (RFC 5545 §3.6.5, the rules as yearly
// RRULEs).
func (b *builder) londonTimezone() {
	for _, l := range []string{
		"BEGIN:VTIMEZONE",
		"TZID:Europe/London",
		"BEGIN:DAYLIGHT",
		"TZOFFSETFROM:+0000",
		"TZOFFSETTO:+0100",
		"TZNAME:BST",
		"DTSTART:19810329T010000",
		"RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
		"END:DAYLIGHT",
		"BEGIN:STANDARD",
		"TZOFFSETFROM:+0100",
		"TZOFFSETTO:+0000",
		"TZNAME:GMT",
		"DTSTART:19961027T020000",
		"RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
		"END:STANDARD",
		"END:VTIMEZONE",
	} {
		b.line(l)
	}
}

func utc(t time.Time) string { return t.UTC().Format("20060102T150405Z") }

// text escapes a TEXT value (RFC 5545 §3.3.11).
func text(s string) string {
	r := strings.NewReplacer(`\`, `\\`, ";", `\;`, ",", `\,`, "\r\n", `\n`, "\n", `\n`, "\r", `\n`)
	return r.Replace(s)
}

// param is a parameter value (§3.2): quoted, without DQUOTE or controls
// (which it may not hold at all).
func param(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '"' || r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	return `"` + s + `"`
}

type builder struct{ strings.Builder }

// line writes one content line folded at 75 octets, never inside a UTF-8
// sequence (§3.1: "SHOULD NOT be longer than 75 octets").
func (b *builder) line(s string) {
	limit := 75
	for len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		b.WriteString(s[:cut] + "\r\n ")
		s = s[cut:]
		limit = 74 // the leading space counts
	}
	b.WriteString(s + "\r\n")
}
