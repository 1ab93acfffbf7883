package notices

import (
	"strconv"
	"time"
)

// Kind is what a notice says about its appointment.
type Kind string

const (
	KindNew       Kind = "new"
	KindChanged   Kind = "changed"
	KindCancelled Kind = "cancelled"
)

// Status is where a notice is, in the words appointment-system developers
// know from GOV.UK Notify.
type Status string

const (
	StatusCreated          Status = "created"
	StatusSending          Status = "sending"
	StatusDelivered        Status = "delivered"         // accepted by the patient's MX
	StatusPermanentFailure Status = "permanent-failure" // hard bounce or invalid address
	StatusTemporaryFailure Status = "temporary-failure" // soft bounce, or still sending after 3 days
	StatusTechnicalFailure Status = "technical-failure" // our fault
	StatusLetterQueued     Status = "letter-queued"
	StatusLetterPrinted    Status = "letter-printed"
	StatusCancelled        Status = "cancelled"
	// StatusRecorded marks a receipt that came after the email's first
	// final status: kept in the timeline, never the notice's status.
	StatusRecorded Status = "recorded"
)

// final reports whether s ends an email's story: the first one wins.
func (s Status) final() bool {
	switch s {
	case StatusDelivered, StatusPermanentFailure, StatusTemporaryFailure, StatusTechnicalFailure:
		return true
	}
	return false
}

// PostalAddress is a patient's address for the letter fallback.
type PostalAddress struct {
	Lines    []string `json:"lines"`
	Postcode string   `json:"postcode"`
}

// Appointment is the validated content of a notice: what the patient is
// told. The NHS number is kept for the sending system's matching only; it
// is never put in an email or a letter.
type Appointment struct {
	PatientName  string         `json:"patient_name"`
	Email        string         `json:"email,omitempty"`
	Address      *PostalAddress `json:"address,omitempty"`
	NHSNumber    string         `json:"nhs_number,omitempty"`
	Start        time.Time      `json:"start"`
	End          time.Time      `json:"end"`
	TimeZone     string         `json:"time_zone"`
	Clinic       string         `json:"clinic,omitempty"`
	Location     string         `json:"location"`
	Department   string         `json:"department,omitempty"`
	Instructions string         `json:"instructions,omitempty"`
	ContactPhone string         `json:"contact_phone,omitempty"`
	VideoLink    string         `json:"video_link,omitempty"`
}

// Event is one line of a notice's timeline.
type Event struct {
	Time     time.Time `json:"time"`
	Status   Status    `json:"status"`
	Sequence int       `json:"sequence"` // the notice version (iCalendar SEQUENCE) it is about
	Detail   string    `json:"detail,omitempty"`
}

// LetterState is where a notice's letter is in the print queue.
type LetterState string

const (
	LetterPending   LetterState = "pending"   // waiting for the next print run
	LetterInRun     LetterState = "in-run"    // in a print run's PDF, not yet marked printed
	LetterPrinted   LetterState = "printed"   // the run was marked printed
	LetterCancelled LetterState = "cancelled" // cancelled before its run
)

// Letter is a notice's paper fallback.
type Letter struct {
	State    LetterState `json:"state"`
	Sequence int         `json:"sequence"` // notice version it prints
	Queued   time.Time   `json:"queued"`
	Reason   string      `json:"reason"`
	Run      string      `json:"run,omitempty"`
	Printed  time.Time   `json:"printed,omitzero"`
}

// WebhookEvent is one status change waiting to be told to the sending
// system's webhook. It is stored in the notice in the same write as the
// change, so a change is never without its event.
type WebhookEvent struct {
	Key         string    `json:"key"`      // idempotency key: notice ID and sequence number
	Sequence    int       `json:"sequence"` // per notice, increasing; events may arrive out of order
	Status      Status    `json:"status"`
	Time        time.Time `json:"time"`
	Detail      string    `json:"detail,omitempty"`
	Attempts    int       `json:"attempts,omitempty"`
	NextAttempt time.Time `json:"next_attempt"`
}

// Notice is one appointment notice and everything that happened to it.
type Notice struct {
	ID           string      `json:"id"` // ours: in the bounce address (VERP) and webhook keys
	Reference    string      `json:"reference"`
	Organisation string      `json:"organisation"`
	Credential   string      `json:"credential"` // the sending system's credential ID
	Kind         Kind        `json:"kind"`
	Appointment  Appointment `json:"appointment"`
	Sequence     int         `json:"sequence"` // iCalendar SEQUENCE: 0 for new, +1 per change or cancellation
	Digest       string      `json:"digest"`   // of kind and content: same digest, same notice
	Created      time.Time   `json:"created"`
	Updated      time.Time   `json:"updated"`

	Status      Status  `json:"status"`       // the latest status, as shown
	EmailStatus Status  `json:"email_status"` // the email's first final status for this sequence, or sending/created
	Timeline    []Event `json:"timeline"`

	// Dispatch: the current version waits to be rendered and handed to
	// the relay when Pending; not before Due (the organisation's sending
	// window).
	Pending bool      `json:"pending,omitempty"`
	Due     time.Time `json:"due,omitzero"`
	QueueID string    `json:"queue_id,omitempty"` // relay queue ID of the latest email

	Letter *Letter `json:"letter,omitempty"`

	EventSeq int            `json:"event_seq"` // last webhook event sequence number
	Outbox   []WebhookEvent `json:"outbox,omitempty"`
	Hooked   bool           `json:"hooked,omitempty"` // its credential has a webhook: changes go to the outbox
}

// record appends a status change to the timeline, makes it the shown
// status and queues its webhook event.
func (n *Notice) record(now time.Time, s Status, detail string) {
	n.Timeline = append(n.Timeline, Event{Time: now, Status: s, Sequence: n.Sequence, Detail: detail})
	if s != StatusRecorded {
		n.Status = s
	}
	n.Updated = now
	n.EventSeq++
	if !n.Hooked { // nobody to tell: no event to store and send
		return
	}
	n.Outbox = append(n.Outbox, WebhookEvent{
		Key: n.ID + "-" + strconv.Itoa(n.EventSeq), Sequence: n.EventSeq, Status: s, Time: now, Detail: detail, NextAttempt: now,
	})
}

// Local returns the appointment's times in its own time zone (a stored
// time keeps only its offset, not its zone).
func (a Appointment) Local() (start, end time.Time) {
	loc, err := time.LoadLocation(a.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	return a.Start.In(loc), a.End.In(loc)
}
