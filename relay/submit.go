package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"nhsrelay/audit"
	"nhsrelay/relay/queue"
	"nhsrelay/relay/spool"
)

// bodyReader remembers the error of the caller's reader, so Submit can
// return it wrapped whatever the spool makes of it.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// Submit queues a message: the body is streamed to the encrypted spool and
// made durable, then the queue record is committed. It returns only when
// both are on stable storage, so the caller may then acknowledge (RFC 5321
// §6.1: after 250 the message must not be lost). On error nothing is left
// behind; an error from reading body is returned wrapped.
func (r *Relay) Submit(ctx context.Context, env Envelope, body io.Reader) (string, error) {
	keep := dedupe(env.Recipients)
	if len(keep) == 0 {
		return "", ErrNoRecipients
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("relay: submit: %w", err)
	}
	if !env.Kind.valid() || env.Kind == KindNotice && (env.System || env.Inbound) {
		return "", fmt.Errorf("relay: submit: %w", ErrBadKind)
	}
	id := NewID()
	if env.ID != "" {
		id = env.ID
	}
	tap := &headerTap{r: body}
	br := &bodyReader{r: tap}
	n, err := r.spool.Write(id, br)
	if env.ID != "" && errors.Is(err, spool.ErrExists) {
		if _, gerr := r.store.Get(ctx, id); gerr == nil {
			return id, nil // already queued: the intake is retrying (Envelope.ID)
		}
	}
	// A failed Write leaves nothing behind itself; removing id here could
	// only ever delete another message's body (spool.ErrExists).
	if br.err != nil {
		return "", fmt.Errorf("relay: submit: read message: %w", br.err)
	}
	if err != nil {
		return "", fmt.Errorf("relay: submit: %w", err)
	}
	now := r.cfg.Now()
	m := queue.Message{
		ID: id, From: env.From, Account: env.Account, ClientIP: env.ClientIP,
		Inbound: env.Inbound, System: env.System, Kind: string(env.Kind), Received: now, Size: n, Ret: env.Ret, EnvID: env.EnvID,
	}
	for _, i := range keep {
		rc := queue.Recipient{Address: env.Recipients[i], State: queue.Queued, NextAttempt: now}
		if i < len(env.RcptDSN) {
			rc.Notify, rc.ORcpt = env.RcptDSN[i].Notify, env.RcptDSN[i].ORcpt
		}
		m.Recipients = append(m.Recipients, rc)
	}
	// The record is committed after the body, with a context that a
	// client's disconnect cannot cancel halfway: a record is never without
	// its file.
	if err := r.store.Add(context.WithoutCancel(ctx), m); err != nil && !r.committedAnyway(ctx, m) {
		return "", fmt.Errorf("relay: submit: commit %s: %w", id, err)
	}
	r.schedule(m)
	r.metrics.accepted.Inc()
	r.log.Info("queued", "msgid", id, "from", env.From, "recipients", len(m.Recipients), "size", n,
		"account", env.Account, "client_ip", env.ClientIP, "inbound", env.Inbound, "system", env.System, "kind", string(env.Kind))
	r.audit(audit.Event{Actor: actor(ctx, env), Action: "accepted", QueueID: id, Outcome: "ok",
		Detail: audit.WithFields(fmt.Sprintf("%d recipient(s), %d bytes", len(m.Recipients), n), acceptedFields(m, tap.header()))})
	r.Kick()
	return id, nil
}

func actor(ctx context.Context, env Envelope) string {
	if a := audit.ActorFrom(ctx); a != "system" {
		return a
	}
	if env.Account != "" {
		return env.Account
	}
	if env.From == "" {
		return "system"
	}
	return "smtp:" + env.ClientIP
}

// dedupe returns the indexes of the recipients to keep: repeated ones
// (compared case-insensitively) are dropped, so one mailbox never gets the
// message twice from one transaction.
func dedupe(in []string) []int {
	seen := make(map[string]bool, len(in))
	var out []int
	for i, a := range in {
		k := strings.ToLower(a)
		if a == "" || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, i)
	}
	return out
}

// committedAnyway decides, after Add failed, whether m's record is in the
// store after all: a store across the network (Redis) may commit an Add
// whose reply is lost when the connection drops, and then a retried Add
// says ErrExists. If the record is there, the message is queued and may be
// acknowledged. If it is certainly absent, the body is removed. If the
// store cannot say, the body is kept, so that a record committed after all
// is never without it (recovery removes a body that has no record).
func (r *Relay) committedAnyway(ctx context.Context, m queue.Message) bool {
	got, err := r.store.Get(context.WithoutCancel(ctx), m.ID)
	switch {
	case err == nil && got.From == m.From && got.Size == m.Size:
		r.log.Warn("queue commit reported an error but the record is there; accepted", "msgid", m.ID)
		return true
	case errors.Is(err, queue.ErrNotFound):
		r.spool.Remove(m.ID)
	}
	return false
}
