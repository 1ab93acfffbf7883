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
