// Package audit is the append-only, hash-chained audit log: every step a
// message or a directory entry goes through is one Event (who, what, which
// ID, which endpoint, outcome — never content). Each record carries the
// SHA-256 of the record before it, so a changed or removed record breaks the
// chain at a point Verify can name. It is a leaf package: any package may
// record events through the Recorder interface.
package audit

import "time"

// Event is one audited action.
type Event struct {
	Time     time.Time `json:"time"`
	Actor    string    `json:"actor"`              // account, admin token name, or "system"
	Action   string    `json:"action"`             // "accepted", "delivered", "endpoint.verified", ...
	QueueID  string    `json:"queue_id,omitempty"` // message the action concerns
	Endpoint string    `json:"endpoint,omitempty"` // endpoint address or ID
	Outcome  string    `json:"outcome"`            // "ok", "refused", "failed", ...
	Detail   string    `json:"detail,omitempty"`   // a reason in words; never clinical content
}

// Recorder is what packages that audit need: Record returns once the event
// is durable.
type Recorder interface {
	Record(ev Event) error
}
