package smimepolicy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"nhsrelay/audit"
	"nhsrelay/directory"
	"nhsrelay/relay"
	"nhsrelay/relay/maildir"
	"nhsrelay/relay/queue"
	"nhsrelay/relay/spool"
)

// Record is what the quarantine keeps about one refused message, beside
// the message itself. It holds no content.
type Record struct {
	ID       string    `json:"id"`       // quarantine ID: <queue ID>-<endpoint hash>
	QueueID  string    `json:"queue_id"` // the relay's queue ID
	Endpoint string    `json:"endpoint"`
	From     string    `json:"from"` // envelope sender
	ClientIP string    `json:"client_ip,omitempty"`
	Received time.Time `json:"received"`
	At       time.Time `json:"quarantined_at"`
	Reason   string    `json:"reason"`
}

// quarantineID names a message's quarantine entry for one endpoint:
// stable, so a repeated attempt after a crash finds the entry it made.
func quarantineID(queueID, endpoint string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(endpoint)))
	return queueID + "-" + hex.EncodeToString(sum[:8])
}

// quarantine keeps an inbound message that must not reach the mailbox,
// tells the endpoint's owner and returns the *QuarantineError that makes
// the relay send the sender a DSN. In order, each step durable before the
// next: (1) the message as it arrived (still encrypted if it came
// encrypted; the plaintext is never written) into QuarantineDir, encrypted
// at rest with the spool key like any spooled body; (2) the Record as
// <id>.json, mode 0600; (3) a notice into the endpoint's own mailbox
// naming the sender, the reason and the quarantine ID — never the content.
// A repeat for the same message and endpoint reuses what is there.
func (p *Policy) quarantine(ctx context.Context, m queue.Message, ep directory.Endpoint, body relay.Body, reason string, cause error) error {
	id := quarantineID(m.ID, ep.Address)
	// The reason goes to a DSN, a notice, a record kept in clear and the
	// audit log: one bounded printable line.
	reason = oneLine(reason)
	fail := func(step string, err error) error { // keep trying: the message is not dropped
		p.log.Error("quarantine failed; will retry", "msgid", m.ID, "endpoint", ep.Address, "step", step, "err", err)
		return fmt.Errorf("smimepolicy: quarantine %s: %s: %w", id, step, err)
	}
	f, err := body.Reopen()
	if err != nil {
		return fail("reopen spooled message", err)
	}
	_, err = p.quar.Write(id, f)
	f.Close()
	if err != nil && !errors.Is(err, spool.ErrExists) {
		return fail("store message", err)
	}
	rec := Record{ID: id, QueueID: m.ID, Endpoint: ep.Address, From: m.From, ClientIP: m.ClientIP,
		Received: m.Received, At: p.cfg.Now().UTC(), Reason: reason}
	if err := writeRecord(filepath.Join(p.cfg.QuarantineDir, id+".json"), rec); err != nil {
		return fail("store record", err)
	}
	if err := p.notify(ep, rec); err != nil {
		return fail("notify endpoint owner", err)
	}
	p.record(audit.Event{Action: "smime.quarantined", QueueID: m.ID, Endpoint: ep.Address, Outcome: "quarantined",
		Detail: fmt.Sprintf("quarantine %s, from %s: %s", id, orNull(m.From), reason)})
	p.log.Warn("inbound message quarantined", "msgid", m.ID, "endpoint", ep.Address, "from", m.From,
		"quarantine_id", id, "reason", reason)
	return &QuarantineError{ID: id, Reason: reason, Err: cause}
}

func orNull(from string) string {
	if from == "" {
		return "<>"
	}
	return from
}

// writeRecord writes rec to path atomically and durably (temp file,
// fsync, rename, fsync of the folder), mode 0600.
func writeRecord(path string, rec Record) (err error) {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp") // 0600; spool.Open clears *.tmp
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(append(data, '\n')); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// notify puts a notice into the endpoint's own Maildir (whoever reads the
// endpoint's mail is its owner), keyed by quarantine ID so a repeat does
// not duplicate it. The endpoint's contacts are named in it. Without a
// MaildirRoot the notice is only logged and audited.
func (p *Policy) notify(ep directory.Endpoint, rec Record) error {
	if p.cfg.MaildirRoot == "" {
		return nil
	}
	box := strings.ToLower(ep.Address)
	if box == "" || strings.ContainsAny(box, "/\\\x00") || strings.HasPrefix(box, ".") {
		return fmt.Errorf("address %q cannot name a mailbox folder", ep.Address)
	}
	return maildir.Deliver(filepath.Join(p.cfg.MaildirRoot, box), "Q"+rec.ID, bytes.NewReader(p.notice(ep, rec)))
}

// notice is the owner's quarantine notice: who, when, why, and what to do.
// Nothing from the message itself beyond its envelope sender.
func (p *Policy) notice(ep directory.Endpoint, rec Record) []byte {
	var b bytes.Buffer
	var rnd [8]byte
	rand.Read(rnd[:])
	from := "postmaster@" + p.cfg.Hostname
	fmt.Fprintf(&b, "%s: system; by=%s (notice generated by this relay; not clinical, not S/MIME signed)\r\n", TraceHeader, p.cfg.Hostname)
	fmt.Fprintf(&b, "From: NHS relay <%s>\r\nTo: <%s>\r\n", from, ep.Address)
	fmt.Fprintf(&b, "Subject: A message for %s was quarantined\r\n", ep.Address)
	fmt.Fprintf(&b, "Date: %s\r\nMessage-ID: <%s.%s@%s>\r\n", rec.At.Format(time.RFC1123Z), rec.ID, hex.EncodeToString(rnd[:]), p.cfg.Hostname)
	b.WriteString("Auto-Submitted: auto-generated\r\n") // RFC 3834 §5
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	fmt.Fprintf(&b, "A message addressed to %s was not delivered to this mailbox.\r\n\r\n", ep.Address)
	fmt.Fprintf(&b, "Sender:        %s\r\n", orNull(rec.From))
	if rec.ClientIP != "" {
		fmt.Fprintf(&b, "Sent from:     %s\r\n", rec.ClientIP)
	}
	fmt.Fprintf(&b, "Received:      %s\r\n", rec.Received.UTC().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Reason:        %s\r\n", rec.Reason)
	fmt.Fprintf(&b, "Quarantine ID: %s\r\n\r\n", rec.ID)
	b.WriteString("It is kept in quarantine on this relay, encrypted, and was not shown to anyone.\r\n" +
		"The sender has been told that it was not delivered. If you expected this message,\r\n" +
		"ask the sender to check their S/MIME certificate, or give the quarantine ID to\r\n" +
		"the relay's administrators.\r\n")
	if len(ep.Contacts) > 0 {
		fmt.Fprintf(&b, "\r\nContacts for this endpoint in the NHS directory: %s\r\n", strings.Join(slices.Clone(ep.Contacts), ", "))
	}
	return b.Bytes()
}

// Quarantined lists the quarantine records, oldest first by ID.
func (p *Policy) Quarantined() ([]Record, error) {
	ids, err := p.quar.IDs()
	if err != nil {
		return nil, fmt.Errorf("smimepolicy: list quarantine: %w", err)
	}
	out := make([]Record, 0, len(ids))
	for _, id := range ids {
		data, err := os.ReadFile(filepath.Join(p.cfg.QuarantineDir, id+".json"))
		if err != nil {
			out = append(out, Record{ID: id, Reason: "record missing: " + err.Error()})
			continue
		}
		var rec Record
		if err := json.Unmarshal(data, &rec); err != nil {
			rec = Record{ID: id, Reason: "record unreadable: " + err.Error()}
		}
		out = append(out, rec)
	}
	return out, nil
}

// QuarantinedMessage returns a quarantined message as it arrived, for an
// administrator to inspect or re-inject.
func (p *Policy) QuarantinedMessage(id string) (io.ReadCloser, error) {
	rc, err := p.quar.Open(id)
	if err != nil {
		return nil, fmt.Errorf("smimepolicy: quarantined %s: %w", id, err)
	}
	return rc, nil
}
