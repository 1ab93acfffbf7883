// Package queue holds the per-recipient delivery state of spooled messages
// behind a small Store interface; boltstore.go is the embedded
// implementation and queuetest the contract suite every implementation runs.
package queue

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound means no message has the ID.
var ErrNotFound = errors.New("queue: message not found")

// ErrExists means Add was given an ID that is already queued.
var ErrExists = errors.New("queue: message already exists")

// State is a recipient's delivery state.
type State string

const (
	Queued    State = "queued"    // waiting for its next attempt
	Delivered State = "delivered" // accepted by the next hop or the mailbox
	Failed    State = "failed"    // given up; a failure DSN was queued
	Held      State = "held"      // kept back (no valid certificate); the sender was told
)

// Recipient is the delivery state of one forward-path.
type Recipient struct {
	Address       string    `json:"address"`
	State         State     `json:"state"`
	Attempts      int       `json:"attempts"`
	NextAttempt   time.Time `json:"next_attempt"`
	LastError     string    `json:"last_error,omitempty"`
	LastCode      string    `json:"last_code,omitempty"` // enhanced status, e.g. "4.4.1"
	DelayNotified bool      `json:"delay_notified,omitempty"`
	HoldNotified  string    `json:"hold_notified,omitempty"` // hold reason the sender was told; the same again sends no DSN
	// DSN request (RFC 3461 §4): Notify is NOTIFY's keywords ("SUCCESS",
	// "FAILURE", "DELAY" or "NEVER"; none means the default, failure and
	// delay); ORcpt is ORCPT as "type;address".
	Notify []string `json:"notify,omitempty"`
	ORcpt  string   `json:"orcpt,omitempty"`
}

// Message is a spooled message and its recipients' state.
type Message struct {
	ID         string      `json:"id"`
	From       string      `json:"from"`
	Account    string      `json:"account,omitempty"`
	ClientIP   string      `json:"client_ip,omitempty"`
	Inbound    bool        `json:"inbound,omitempty"`
	System     bool        `json:"system,omitempty"` // the relay's own, non-clinical mail (relay.Envelope.System)
	Received   time.Time   `json:"received"`
	Size       int64       `json:"size"`
	Recipients []Recipient `json:"recipients"`
	// RFC 3461 §4.3 RET ("FULL" or "HDRS") and §4.4 ENVID of the
	// transaction, passed on to a next hop that offers DSN.
	Ret   string `json:"ret,omitempty"`
	EnvID string `json:"envid,omitempty"`
}

// Store keeps queue records. Every method that changes state returns only
// after the change is on stable storage.
type Store interface {
	Add(ctx context.Context, m Message) error // ErrExists if m.ID is taken
	Get(ctx context.Context, id string) (Message, error)
	// Update reads, changes with fn and writes back atomically; if fn
	// returns an error nothing is written and Update returns it.
	Update(ctx context.Context, id string, fn func(*Message) error) error
	Delete(ctx context.Context, id string) error // a missing ID is not an error
	List(ctx context.Context) ([]Message, error) // ordered by ID
	Close() error
}
