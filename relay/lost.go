package relay

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"net/textproto"
	"strings"
	"time"

	"nhsrelay/audit"
	"nhsrelay/relay/queue"
	"nhsrelay/relay/spool"
)

// A message whose spooled body is damaged or gone cannot be delivered,
// ever: retrying it for GiveUpAfter would only keep its sender waiting. It
// is failed at once, for every recipient not yet delivered, and never
// silently (DESIGN: "never silent"): the sender gets a failure DSN (RFC
// 3464) naming the queue ID, the Message-ID when its header can still be
// read, and when the relay accepted it; the operator an alert — a log line
// at error level saying what was found, nhsrelay_relay_lost_total, and an
// audit event "lost".
//
// Found at start-up (recover: a queue record whose body the spool did not
// find, or found damaged, spool.Damaged) or at a delivery attempt (the body
// fails to open or authenticate: spool.ErrCorrupt, or is missing).

// lostStatus is the DSN status of a lost message: RFC 3463 §3.4 X.3.0,
// "other or undefined mail system status" — the relay's own storage failed.
const lostStatus = "5.3.0"

// lostText is what the DSN's per-recipient diagnostic says.
const lostText = "the relay's stored copy of the message is damaged or missing and cannot be delivered; please send it again"

// bodyLost reports whether err from opening or reading a spooled body
// means the body can never be read: damaged or missing. A body sealed
// under another key is not lost: the key file can be put right.
func bodyLost(err error) bool {
	return errors.Is(err, spool.ErrCorrupt) || errors.Is(err, fs.ErrNotExist)
}

// lostResult is the outcome of every undelivered recipient of a lost message.
func lostResult(why string) result {
	return result{outcome: permanent, status: lostStatus, text: lostText, lost: why}
}

// noteLost remembers, at start-up, why message id's body cannot be read,
// for its first attempt, and logs it at once at error level.
func (r *Relay) noteLost(m queue.Message, why string) {
	r.log.Error("queued message cannot be recovered: failing it with a DSN to the sender",
		"msgid", m.ID, "from", m.From, "recipients", len(m.Recipients),
		"accepted", m.Received.UTC().Format(time.RFC3339), "reason", why)
	r.mu.Lock()
	r.lostAtStart[m.ID] = why
	r.mu.Unlock()
}

// startupLoss returns why id's body was found unreadable at start-up, if it was.
func (r *Relay) startupLoss(id string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	why, ok := r.lostAtStart[id]
	return why, ok
}

// damageReasons maps the spool's damage report to words per message, and
// words for a missing body that no report names (its record's header was
// unreadable).
func damageReasons(ds []spool.Damage) (byID map[string]string, unnamed string) {
	byID = map[string]string{}
	var anon []string
	for _, d := range ds {
		if d.ID != "" {
			byID[d.ID] = "spool body damaged: " + d.String()
		} else {
			anon = append(anon, d.String())
		}
	}
	unnamed = "spool body missing"
	if len(anon) > 0 {
		unnamed += "; the spool has damaged stretches whose message could not be named, one of which may have held it: " + strings.Join(anon, "; ")
	}
	return byID, unnamed
}

// failLost gives every undelivered recipient of m the lost outcome, once
// one result (or the start-up scan) found its body unreadable.
func failLost(m queue.Message, results map[string]result, why string) {
	for _, rc := range m.Recipients {
		if rc.State != queue.Queued && rc.State != queue.Held {
			continue
		}
		if res, ok := results[rc.Address]; ok && res.outcome == delivered {
			continue
		}
		results[rc.Address] = lostResult(why)
	}
}

// lostIn returns the reason of the first lost result, or "".
func lostIn(results map[string]result) string {
	for _, res := range results {
		if res.lost != "" {
			return res.lost
		}
	}
	return ""
}

// lostExplanation is the DSN's human words for a lost message: which
// message, when it was accepted, and what to do.
func (r *Relay) lostExplanation(m queue.Message) string {
	ref := "queue ID " + m.ID
	if hdr, err := r.originalHeader(m.ID, false); err == nil {
		if mid := headerField(hdr, "Message-ID"); mid != "" {
			ref += ", Message-ID " + mid
		}
	}
	return "This relay accepted your message at " + m.Received.UTC().Format(time.RFC1123) + " (" + ref + "), " +
		"but its stored copy was later found damaged or missing, so it cannot be delivered to the recipients listed below " +
		"and nothing was sent to them from it. Please send the message again. The relay's operator has been alerted."
}

// alertLost raises the operator's alert for a lost message: error log,
// metric and audit event.
func (r *Relay) alertLost(m queue.Message, why string) {
	r.metrics.lost.Inc()
	r.log.Error("message lost: body unreadable, failed at once with a DSN to the sender",
		"msgid", m.ID, "from", m.From, "accepted", m.Received.UTC().Format(time.RFC3339), "reason", why)
	r.audit(audit.Event{Action: "lost", QueueID: m.ID, Outcome: "failed",
		Detail: "accepted " + m.Received.UTC().Format(time.RFC3339) + "; " + why + "; sender told by DSN"})
	r.mu.Lock()
	delete(r.lostAtStart, m.ID)
	r.mu.Unlock()
}

// headerField returns the first value of field name in a header block, "" if none.
func headerField(hdr []byte, name string) string {
	tr := textproto.NewReader(bufio.NewReader(io.MultiReader(bytes.NewReader(hdr), strings.NewReader("\r\n"))))
	h, _ := tr.ReadMIMEHeader()
	return oneLine(h.Get(name))
}
