package timeline

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// Recipient states, in words a sender understands.
const (
	StateQueued      = "queued"      // accepted, not yet tried
	StateDeferred    = "deferred"    // tried, will be tried again
	StateHeld        = "held"        // kept back until it can be sent safely
	StateRelayed     = "relayed"     // handed to the next relay, not confirmed by it
	StateDelivered   = "delivered"   // in the recipient's mailbox (here, or confirmed by the receiving relay)
	StateFailed      = "failed"      // will not be delivered; the sender was told
	StateQuarantined = "quarantined" // kept from the mailbox, the sender was told why
)

// Recipient is where one recipient's copy is.
type Recipient struct {
	Address string    `json:"address"`
	State   string    `json:"state"`
	Since   time.Time `json:"since,omitempty"` // when it reached State
	Detail  string    `json:"detail,omitempty"`
	Read    string    `json:"read,omitempty"` // an MDN's disposition ("displayed at …"), if one came back
}

// Has reports whether the recipient has the message.
func (r Recipient) Has() bool { return r.State == StateDelivered }

// Message is one message's timeline and what it means.
type Message struct {
	QueueID   string    `json:"queue_id"`
	MessageID string    `json:"message_id,omitempty"`
	From      string    `json:"from,omitempty"`
	Account   string    `json:"account,omitempty"`
	ClientIP  string    `json:"client_ip,omitempty"`
	Size      int64     `json:"size,omitempty"`
	Accepted  time.Time `json:"accepted,omitzero"`

	Recipients []Recipient `json:"recipients"`
	Have       []string    `json:"have"`    // recipients that have it
	NotYet     []string    `json:"not_yet"` // recipients that do not have it yet (and may still)
	WillNot    []string    `json:"will_not,omitempty"`
	Events     []Event     `json:"events"`
}

// summarise works out where each recipient's copy is from the events in
// Seq order.
func summarise(id string, evs []Event) Message {
	m := Message{QueueID: id, Events: evs, Have: []string{}, NotYet: []string{}}
	idx := map[string]int{}
	rcpt := func(addr string) *Recipient {
		k := strings.ToLower(addr)
		i, ok := idx[k]
		if !ok {
			i = len(m.Recipients)
			idx[k] = i
			m.Recipients = append(m.Recipients, Recipient{Address: addr, State: StateQueued})
		}
		return &m.Recipients[i]
	}
	set := func(addr, state, detail string, at time.Time) {
		r := rcpt(addr)
		r.State, r.Detail, r.Since = state, detail, at
	}
	for _, e := range evs {
		f := e.Fields
		switch e.Action {
		case "accepted":
			if e.QueueID != id {
				continue
			}
			m.MessageID, m.From, m.Account, m.ClientIP, m.Accepted = f["message_id"], f["from"], f["account"], f["client_ip"], e.Time
			m.Size, _ = strconv.ParseInt(f["size"], 10, 64)
			for a := range strings.SplitSeq(f["rcpts"], ",") {
				if a != "" {
					rcpt(a)
				}
			}
		case "smtp.accepted":
			rcpt(e.Endpoint)
		case "delivered":
			if f["via"] == "smtp" {
				set(f["rcpt"], StateRelayed, "accepted by the next relay "+f["remote"]+": "+f["reply"], e.Time)
			} else if f["rcpt"] != "" {
				set(f["rcpt"], StateDelivered, "in the mailbox on this relay", e.Time)
			}
		case "deferred":
			set(f["rcpt"], StateDeferred, e.Words, e.Time)
		case "held":
			set(f["rcpt"], StateHeld, e.Words, e.Time)
		case "bounced":
			set(f["rcpt"], StateFailed, e.Words, e.Time)
		case "smime.quarantined":
			if strings.Contains(e.Endpoint, "@") {
				set(e.Endpoint, StateQuarantined, e.Words, e.Time)
			}
		case "dsn.received":
			// Another relay's report on this message: "delivered" there
			// means the recipient has it.
			actions := strings.Split(f["actions"], ",")
			for i, a := range strings.Split(f["reported"], ",") {
				if i < len(actions) && strings.HasPrefix(actions[i], "delivered") {
					set(a, StateDelivered, "delivered into the mailbox, confirmed by the receiving relay "+f["reporting_mta"], e.Time)
				} else if i < len(actions) && strings.HasPrefix(actions[i], "failed") {
					set(a, StateFailed, "the receiving relay "+f["reporting_mta"]+" reported "+actions[i], e.Time)
				}
			}
		case "mdn.received":
			if r := f["reader"]; r != "" {
				rcpt(r).Read = f["disposition"] + " at " + e.Time.UTC().Format(time.RFC3339)
			}
		}
	}
	for _, r := range m.Recipients {
		switch r.State {
		case StateDelivered:
			m.Have = append(m.Have, r.Address)
		case StateFailed, StateQuarantined:
			m.WillNot = append(m.WillNot, r.Address)
		default:
			m.NotYet = append(m.NotYet, r.Address)
		}
	}
	slices.Sort(m.Have)
	slices.Sort(m.NotYet)
	return m
}
