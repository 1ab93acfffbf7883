package relay

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"

	"nhsrelay/audit"
	"nhsrelay/relay/dsn"
	"nhsrelay/relay/queue"
)

// NOTIFY keywords (RFC 3461 §4.1).
const (
	notifySuccess = "SUCCESS"
	notifyFailure = "FAILURE"
	notifyDelay   = "DELAY"
	notifyNever   = "NEVER"
)

// wants reports whether rc asked for a notice of kind. RFC 3461 §4.1: no
// NOTIFY means failure and delay notices (an implementation's choice
// between FAILURE and FAILURE,DELAY; we take the latter, as Postfix does);
// NEVER means none at all, failures included.
func wants(rc queue.Recipient, kind string) bool {
	if len(rc.Notify) == 0 {
		return kind != notifySuccess
	}
	return slices.Contains(rc.Notify, kind)
}

// successAction is the receipt a delivered recipient gets, if any: a
// hosted mailbox is "delivered"; a next hop that took the message without
// offering DSN makes it "relayed" (RFC 3461 §6.2.2); one that offered DSN
// was given NOTIFY and reports itself, so nothing is sent here.
func successAction(rc queue.Recipient, res result) (dsn.Action, bool) {
	if res.outcome != delivered || !wants(rc, notifySuccess) {
		return "", false
	}
	switch {
	case res.kind == "maildir":
		return dsn.Delivered, true
	case !res.dsnPassed:
		return dsn.Relayed, true
	}
	return "", false
}

// receiptText is the line a receipt starts with, a transmission slip in
// words: "Delivered to referrals.rx9@nhs.example at 14:02 UTC, into its
// mailbox on relay.nhs.example; 3 attachments, 1.2 MB."
func (r *Relay) receiptText(m queue.Message, rcpts []dsn.Recipient, results map[string]result) string {
	var lines []string
	var att, size int64 = -1, m.Size
	for _, d := range rcpts {
		res := results[d.FinalRecipient]
		at := d.LastAttemptDate.UTC().Format("15:04 MST on 2 Jan 2006")
		if res.attachments >= 0 && res.bytes > 0 {
			att, size = int64(res.attachments), res.bytes
		}
		if d.Action == dsn.Delivered {
			lines = append(lines, fmt.Sprintf("Delivered to %s at %s, into its mailbox on %s.", d.FinalRecipient, at, r.cfg.Hostname))
			continue
		}
		lines = append(lines, fmt.Sprintf("Relayed to %s at %s: accepted by the next relay %s (%s), which does not send delivery receipts itself.",
			d.FinalRecipient, at, res.remoteMTA, res.reply))
	}
	if att < 0 {
		att = int64(r.countAttachments(m.ID))
	}
	return strings.Join(lines, " ") + " " + sizeWords(att, size) + "."
}

// sizeWords: "3 attachments, 1.2 MB".
func sizeWords(attachments, size int64) string {
	s := plural(int(attachments), "1 attachment", fmt.Sprintf("%d attachments", attachments))
	if attachments < 0 {
		s = "attachments not counted (encrypted)"
	}
	switch {
	case size >= 1<<20:
		return fmt.Sprintf("%s, %.1f MB", s, float64(size)/(1<<20))
	case size >= 1<<10:
		return fmt.Sprintf("%s, %.1f KB", s, float64(size)/(1<<10))
	}
	return fmt.Sprintf("%s, %d bytes", s, size)
}

// countAttachments counts the attachments of a spooled message that is
// not encrypted; -1 when it is (or cannot be read).
func (r *Relay) countAttachments(id string) int {
	f, err := r.spool.Open(id)
	if err != nil {
		return -1
	}
	defer f.Close()
	var c attachmentCounter
	if _, err := io.Copy(&c, f); err != nil || c.encrypted {
		return -1
	}
	return c.n
}

// attachmentCounter counts MIME parts marked "Content-Disposition:
// attachment" (RFC 2183 §2.2) in a message written to it, looking only at
// the start of each line: the structure, never the content.
type attachmentCounter struct {
	n         int
	encrypted bool   // an S/MIME enveloped message: its parts cannot be seen
	line      []byte // the start of the current line
	long      bool   // the current line is longer than line keeps
}

func (c *attachmentCounter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if !c.long {
			keep := min(len(chunk), 64-len(c.line))
			c.line = append(c.line, chunk[:keep]...)
			c.long = keep < len(chunk)
		}
		if i < 0 {
			break
		}
		c.endLine()
		p = p[i+1:]
	}
	return n, nil
}

func (c *attachmentCounter) endLine() {
	l := strings.ToLower(string(c.line))
	if name, v, ok := strings.Cut(l, ":"); ok {
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(name) {
		case "content-disposition":
			if strings.HasPrefix(v, "attachment") {
				c.n++
			}
		case "content-type":
			if strings.HasPrefix(v, "application/pkcs7-mime") || strings.HasPrefix(v, "application/x-pkcs7-mime") {
				c.encrypted = true
			}
		}
	}
	c.line, c.long = c.line[:0], false
}

// noteSuppressed records failures the sender asked not to be told about
// (RFC 3461 §4.1, NOTIFY without FAILURE, or NEVER): never silent, the
// operator still sees them in the log and the audit log.
func (r *Relay) noteSuppressed(m queue.Message, rcpts []string) {
	if len(rcpts) == 0 {
		return
	}
	list := strings.Join(rcpts, ",")
	r.log.Warn("failure not notified: the sender asked for no DSN (NOTIFY)", "msgid", m.ID, "rcpts", list)
	r.audit(audit.Event{Action: "dsn.suppressed", QueueID: m.ID, Outcome: "ok",
		Detail: audit.WithFields("the sender asked for no failure notice (NOTIFY)", audit.Fields{"rcpts": list})})
}
