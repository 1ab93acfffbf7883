package smimepolicy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"nhsrelay/audit"
	"nhsrelay/relay/maildir"
)

// ReleasedHeader is the field a released message carries into the
// mailbox: why it was quarantined, who released it, when and why.
const ReleasedHeader = "X-NHSRelay-Quarantine-Released"

// ErrNotQuarantined means no quarantined message has the ID asked for.
var ErrNotQuarantined = errors.New("smimepolicy: no quarantined message has this ID")

// maxReleaseReason bounds the reason an administrator gives.
const maxReleaseReason = 300

// quarantineAction checks what an administrator's release or delete
// needs: a reason in words, and the record of id — looked up among those
// listed, so an ID from a request never names a file by itself.
func (p *Policy) quarantineAction(id, why string) (Record, string, error) {
	why = oneLine(why)
	switch {
	case strings.TrimSpace(why) == "":
		return Record{}, "", errors.New("smimepolicy: a reason is required (it is audited, and a released message carries it)")
	case len(why) > maxReleaseReason:
		return Record{}, "", fmt.Errorf("smimepolicy: reason longer than %d characters", maxReleaseReason)
	}
	recs, err := p.Quarantined()
	if err != nil {
		return Record{}, "", err
	}
	for _, rec := range recs {
		if rec.ID == id && rec.Endpoint != "" {
			return rec, why, nil
		}
	}
	return Record{}, "", fmt.Errorf("%w: %q", ErrNotQuarantined, oneLine(id))
}

// Release delivers quarantined message id to its endpoint's mailbox as it
// arrived (still S/MIME encrypted if it came so: the relay does not claim
// to have verified it), with a ReleasedHeader naming the quarantine reason,
// the administrator (audit.ActorFrom(ctx)) and why they released it, and
// any X-NHSRelay-SMIME field of the message's own removed. The delivery is
// durable (Maildir, keyed by the quarantine ID so a repeat does not
// duplicate it) before the quarantine entry is removed; audited as
// smime.quarantine_released.
func (p *Policy) Release(ctx context.Context, id, why string) (Record, error) {
	rec, why, err := p.quarantineAction(id, why)
	if err != nil {
		return rec, err
	}
	box := strings.ToLower(rec.Endpoint)
	if p.cfg.MaildirRoot == "" || strings.ContainsAny(box, "/\\\x00") || strings.HasPrefix(box, ".") {
		return rec, fmt.Errorf("smimepolicy: release %s: no mailbox for %q", id, rec.Endpoint)
	}
	actor := audit.ActorFrom(ctx)
	msg, err := p.quar.Open(rec.ID)
	if err != nil {
		return rec, fmt.Errorf("smimepolicy: release %s: %w", id, err)
	}
	defer msg.Close()
	var hdr bytes.Buffer
	fmt.Fprintf(&hdr, "%s: id=%s; quarantined=%q; released-by=%q; at=%s; why=%q\r\n", ReleasedHeader, rec.ID,
		clean(rec.Reason), clean(actor), p.cfg.Now().UTC().Format(time.RFC3339), clean(why))
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(copyStripped(pw, msg, TraceHeader)) }()
	err = maildir.Deliver(filepath.Join(p.cfg.MaildirRoot, box), "R"+rec.ID, io.MultiReader(&hdr, pr))
	pr.Close()
	if err != nil {
		return rec, fmt.Errorf("smimepolicy: release %s: deliver: %w", id, err)
	}
	p.record(audit.Event{Actor: actor, Action: "smime.quarantine_released", QueueID: rec.QueueID, Endpoint: rec.Endpoint, Outcome: "ok",
		Detail: fmt.Sprintf("quarantine %s (from %s; quarantined: %s) delivered to the mailbox as it arrived; why: %s", rec.ID, orNull(rec.From), rec.Reason, why)})
	p.log.Warn("quarantined message released", "quarantine_id", rec.ID, "endpoint", rec.Endpoint, "actor", actor, "why", why)
	return rec, p.dropQuarantined(rec.ID)
}

// DeleteQuarantined removes quarantined message id for good, audited as
// smime.quarantine_deleted with the administrator and why.
func (p *Policy) DeleteQuarantined(ctx context.Context, id, why string) (Record, error) {
	rec, why, err := p.quarantineAction(id, why)
	if err != nil {
		return rec, err
	}
	if err := p.dropQuarantined(rec.ID); err != nil {
		return rec, err
	}
	actor := audit.ActorFrom(ctx)
	p.record(audit.Event{Actor: actor, Action: "smime.quarantine_deleted", QueueID: rec.QueueID, Endpoint: rec.Endpoint, Outcome: "ok",
		Detail: fmt.Sprintf("quarantine %s (from %s; quarantined: %s) deleted; why: %s", rec.ID, orNull(rec.From), rec.Reason, why)})
	p.log.Warn("quarantined message deleted", "quarantine_id", rec.ID, "endpoint", rec.Endpoint, "actor", actor, "why", why)
	return rec, nil
}

// dropQuarantined removes the message, then its record: a crash between
// leaves a record without a message, which Quarantined no longer lists.
func (p *Policy) dropQuarantined(id string) error {
	if err := p.quar.Remove(id); err != nil {
		return fmt.Errorf("smimepolicy: remove quarantined %s: %w", id, err)
	}
	if err := os.Remove(filepath.Join(p.cfg.QuarantineDir, id+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("smimepolicy: remove quarantine record %s: %w", id, err)
	}
	return nil
}
