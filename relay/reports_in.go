package relay

import (
	"bytes"
	"io"
	"mime"
	"strings"

	"nhsrelay/audit"
	"nhsrelay/relay/dsn"
	"nhsrelay/relay/queue"
)

// maxReportBytes bounds how much of a delivery report (DSN or MDN) on its
// way into a hosted mailbox is kept to be read; reports are small.
const maxReportBytes = 256 << 10

// deliveryTap watches a message as it is written into a hosted mailbox
// (after the Opener, so in clear): it keeps the header, the whole message
// when it is a delivery report (multipart/report, RFC 6522), and counts
// attachments when a receipt will need them. Only structure and report
// fields are looked at, never content.
type deliveryTap struct {
	r      io.Reader
	head   headerTap
	keep   []byte // the report, while it is one and small
	report bool
	count  *attachmentCounter // nil when no receipt needs the count
	n      int64
}

func newDeliveryTap(r io.Reader, count bool) *deliveryTap {
	t := &deliveryTap{r: r}
	if count {
		t.count = &attachmentCounter{}
	}
	return t
}

func (t *deliveryTap) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		chunk := p[:n]
		t.n += int64(n)
		if t.count != nil {
			t.count.Write(chunk)
		}
		wasDone := t.head.done
		if !wasDone {
			t.head.r = bytes.NewReader(chunk)
			io.Copy(io.Discard, &t.head)
			if t.head.done {
				t.report = isReport(t.head.buf)
			}
		}
		if (!wasDone || t.report) && len(t.keep)+n <= maxReportBytes {
			t.keep = append(t.keep, chunk...)
		} else if t.report {
			t.report = false // too large to be one we read
		}
	}
	return n, err
}

func isReport(hdr []byte) bool {
	mt, _, err := mime.ParseMediaType(headerValue(hdr, "Content-Type"))
	return err == nil && mt == "multipart/report"
}

// attachments is the count for a receipt, or -1.
func (t *deliveryTap) attachments() int {
	if t.count == nil || t.count.encrypted {
		return -1
	}
	return t.count.n
}

// noteReport audits a delivery report that reached a hosted mailbox, so
// the timeline of the message it is about shows it: mdn.received for a
// reader's disposition notification (RFC 8098), dsn.received for another
// relay's delivery status notification (RFC 3464). The original is named
// by its Message-ID (orig_message_id).
func (r *Relay) noteReport(m queue.Message, mailbox string, t *deliveryTap) {
	if !t.report {
		return
	}
	_, params, _ := mime.ParseMediaType(headerValue(t.head.buf, "Content-Type"))
	ev := audit.Event{QueueID: m.ID, Endpoint: mailbox, Outcome: "ok"}
	switch strings.ToLower(params["report-type"]) {
	case "disposition-notification":
		mdn, err := dsn.ParseMDN(bytes.NewReader(t.keep))
		if err != nil {
			r.log.Info("unreadable disposition notification delivered", "msgid", m.ID, "err", err)
			return
		}
		ev.Action = "mdn.received"
		ev.Detail = audit.WithFields("the reader's mail client reported the message "+mdn.DispositionType(), audit.Fields{
			"orig_message_id": oneLine(mdn.OriginalMessageID), "disposition": oneLine(mdn.Disposition),
			"reader": oneLine(mdn.FinalRecipient), "reporting_ua": oneLine(mdn.ReportingUA)})
	case "delivery-status":
		rep, err := dsn.Parse(bytes.NewReader(t.keep))
		if err != nil {
			r.log.Info("unreadable delivery status notification delivered", "msgid", m.ID, "err", err)
			return
		}
		var rcpts, actions []string
		for _, rc := range rep.Recipients {
			rcpts = append(rcpts, rc.FinalRecipient)
			actions = append(actions, string(rc.Action)+" "+rc.Status)
		}
		ev.Action = "dsn.received"
		ev.Detail = audit.WithFields("a delivery status notification from "+oneLine(rep.ReportingMTA), audit.Fields{
			"orig_message_id": oneLine(headerValue(rep.Headers, "Message-ID")), "reporting_mta": oneLine(rep.ReportingMTA),
			"remote_queue_id": oneLine(rep.QueueID), "reported": oneLine(strings.Join(rcpts, ",")),
			"actions": oneLine(strings.Join(actions, ",")), "envid": oneLine(rep.EnvelopeID)})
	default:
		return
	}
	r.audit(ev)
}
