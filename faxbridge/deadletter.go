package faxbridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"nhsrelay/audit"
)

// DeadLetter is a fax kept because it could not be delivered: no endpoint
// owns the number, the owner cannot receive, or nothing in it was readable.
type DeadLetter struct {
	Ref        string    `json:"ref"`
	Reason     string    `json:"reason"`
	Source     string    `json:"source"`
	Received   time.Time `json:"received"`
	Called     string    `json:"called,omitempty"`
	Calling    string    `json:"calling,omitempty"`
	CallerName string    `json:"caller_name,omitempty"`
	CSI        string    `json:"csi,omitempty"`
	Pages      int       `json:"pages"`
	Quality    string    `json:"quality,omitempty"`
	PDF        bool      `json:"pdf,omitempty"`
	Size       int       `json:"size"`
}

// ErrNoDeadLetter means no dead letter has the reference.
var ErrNoDeadLetter = errors.New("faxbridge: no such dead letter")

// deadLetter keeps in: the file in the encrypted spool, then its index
// entry (so an entry never lacks its file). ERROR log, metric and audit
// event are the administrator's alert.
func (b *Bridge) deadLetter(ctx context.Context, in Inbound, rec Record, reason string) (Outcome, error) {
	reason = oneLine(reason)
	dl := DeadLetter{Ref: rec.Ref, Reason: reason, Source: in.Source, Received: in.Received, Called: rec.Called,
		Calling: rec.Calling, CallerName: in.CallerName, CSI: rec.CSI, Pages: rec.Pages, Quality: in.Quality,
		PDF: in.PDF, Size: len(in.Data)}
	wrote := false
	if rc, err := b.dead.Open(rec.Ref); err == nil {
		rc.Close() // a re-route that failed again: the file is kept already
	} else if _, err := b.dead.Write(rec.Ref, bytes.NewReader(in.Data)); err != nil {
		return Outcome{}, fmt.Errorf("faxbridge: dead-letter %s: %w", rec.Ref, err)
	} else {
		wrote = true
	}
	rec.Outcome, rec.Reason = OutcomeDeadLetter, reason
	err := b.state.db.Update(func(tx *bolt.Tx) error {
		if err := put(tx, bucketDead, dl.Ref, dl); err != nil {
			return err
		}
		return put(tx, bucketFaxes, rec.Ref, rec)
	})
	if err != nil {
		// Only the file this call wrote: a re-route's file is still the
		// one its existing index entry names.
		if wrote {
			if rerr := b.dead.Remove(rec.Ref); rerr != nil {
				b.log.Error("dead-letter file not removed after a failed index update", "ref", rec.Ref, "err", rerr)
			}
		}
		return Outcome{}, fmt.Errorf("faxbridge: dead-letter %s: %w", rec.Ref, err)
	}
	in.stored(Outcome{Ref: rec.Ref, Outcome: OutcomeDeadLetter})
	b.m.received.WithLabelValues(in.Source, OutcomeDeadLetter).Inc()
	b.m.deadLetters.Inc()
	b.log.Error("fax kept as dead letter: re-route it with `nhsrelay fax deadletter reroute`",
		"ref", rec.Ref, "source", in.Source, "called", rec.Called, "reason", reason)
	b.record(ctx, audit.Event{Action: "fax.dead_letter", QueueID: rec.Ref, Outcome: "held", Detail: reason})
	return Outcome{Ref: rec.Ref, Outcome: OutcomeDeadLetter, Pages: rec.Pages, Reason: reason}, nil
}

// DeadLetters lists the dead letters, oldest first.
func (b *Bridge) DeadLetters() ([]DeadLetter, error) {
	var out []DeadLetter
	err := b.state.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDead).ForEach(func(_, v []byte) error {
			var d DeadLetter
			if err := json.Unmarshal(v, &d); err != nil {
				return err
			}
			out = append(out, d)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Received.Before(out[j].Received) })
	return out, err
}

func (b *Bridge) deadCount() (int, error) {
	n := 0
	err := b.state.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketDead).Stats().KeyN
		return nil
	})
	return n, err
}

// Reroute sends dead letter ref on: to the endpoint with address (or ID)
// to if given, else by its number again (after the directory was fixed).
// A fax that still cannot be routed stays a dead letter, with the new
// reason.
func (b *Bridge) Reroute(ctx context.Context, ref, to string) (Outcome, error) {
	var dl DeadLetter
	err := b.state.db.View(func(tx *bolt.Tx) error {
		ok, err := get(tx, bucketDead, ref, &dl)
		if err == nil && !ok {
			err = ErrNoDeadLetter
		}
		return err
	})
	if err != nil {
		return Outcome{}, fmt.Errorf("faxbridge: reroute %s: %w", ref, err)
	}
	rc, err := b.dead.Open(ref)
	if err != nil {
		return Outcome{}, fmt.Errorf("faxbridge: reroute %s: %w", ref, err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return Outcome{}, fmt.Errorf("faxbridge: reroute %s: %w", ref, err)
	}
	in := Inbound{Source: dl.Source, Called: dl.Called, Calling: dl.Calling, CallerName: dl.CallerName, CSI: dl.CSI,
		Received: dl.Received, Data: data, PDF: dl.PDF, Quality: dl.Quality}
	out, err := b.receive(ctx, in, ref, to, true)
	if err != nil || out.Outcome == OutcomeDeadLetter {
		return out, err
	}
	// The dead letter is removed only after the relay has the message;
	// a crash in between may deliver it twice, never lose it.
	b.deleteDead(ref)
	b.record(ctx, audit.Event{Action: "fax.rerouted", QueueID: out.QueueID, Outcome: "ok",
		Detail: fmt.Sprintf("dead letter %s sent on to %s", ref, orDash(to))})
	return out, nil
}

// deleteDead is the index entry and the spool file of a dead letter gone.
func (b *Bridge) deleteDead(ref string) {
	err := b.state.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketDead).Delete([]byte(ref)) })
	if err == nil {
		b.dead.Remove(ref)
		b.m.deadLetters.Dec()
	} else {
		b.log.Error("dead letter sent on but not removed", "ref", ref, "err", err)
	}
}
