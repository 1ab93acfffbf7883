package relay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"nhsrelay/directory"
	"nhsrelay/relay/maildir"
	"nhsrelay/relay/queue"
)

// outcome is what one attempt did for one recipient.
type outcome int

const (
	delivered outcome = iota
	temporary         // retry later
	permanent         // failure DSN now
	held              // kept back; the sender is told
)

// result is one recipient's outcome with the words for logs and DSNs.
type result struct {
	outcome   outcome
	status    string // enhanced status code (RFC 3463), "2.0.0", "4.4.1", ...
	text      string // in words, for LastError and the DSN's human part
	remoteMTA string // host that answered, "" if none
	reply     string // the remote SMTP reply ("550 5.1.1 ..."), "" if none
	kind      string // "maildir" or "smtp", for metrics
	endpoint  string // endpoint ID or address, for logs and audit
	// lost is set when the message's body can never be read (lost.go):
	// why, in words for the operator.
	lost string
	// redirect is set when this attempt followed an administrator's
	// redirect for the recipient; report audits it once the recipient's
	// outcome is final.
	redirect *directory.Resolution

	// For the timeline and receipts: the next hop's TLS version and
	// certificate ("CN=…; sha256=…"), whether it offered DSN and was given
	// the sender's NOTIFY (dsnPassed), and what a hosted delivery wrote
	// (attachments counted, -1 if not; bytes).
	tls, peer   string
	dsnPassed   bool
	attachments int
	bytes       int64
}

// failure builds a non-delivered result; the enhanced code's class follows
// the outcome, so the two cannot disagree: 5 only for a permanent failure;
// a held recipient is "persistent transient" (RFC 3463 §3.1, class 4) and
// reported as delayed until the relay gives up, when it becomes 5.
func failure(o outcome, subject, detail int, text string) result {
	class := 4
	if o == permanent {
		class = 5
	}
	return result{outcome: o, status: fmt.Sprintf("%d.%d.%d", class, subject, detail), text: text}
}

// group is the recipients of one message that share a next hop. Each
// distinct address on the wire is sent to once, for every queued recipient
// that the directory routes to it (two addresses redirected to one
// endpoint are one RCPT, one Maildir copy).
type group struct {
	key   string // hop key: "maildir", "smtp:<host:port>|<tls>", "mx:<domain>|<tls>"
	hop   directory.NextHop
	eps   []directory.Endpoint // per wire address
	to    []string             // distinct wire addresses: RCPT TO, Delivered-To
	rcpts [][]string           // the queued recipients each wire address stands for
}

func (g *group) add(t target, rcpt string) {
	for i, a := range g.to {
		if strings.EqualFold(a, t.to) {
			g.rcpts[i] = append(g.rcpts[i], rcpt)
			return
		}
	}
	g.eps = append(g.eps, t.ep)
	g.to = append(g.to, t.to)
	g.rcpts = append(g.rcpts, []string{rcpt})
}

// attempt delivers the due recipients of message id once and records what
// happened. Held recipients that are due are looked at again: a
// certificate may have been renewed or an endpoint verified since.
func (r *Relay) attempt(ctx context.Context, id string) {
	if r.cfg.Leases != nil {
		release, err := r.cfg.Leases.Lease(ctx, id, r.cfg.AttemptTimeout+leaseMargin)
		if err != nil {
			if !errors.Is(err, queue.ErrLeased) {
				r.log.Error("take delivery lease", "msgid", id, "err", err)
			}
			r.deferEntry(id) // another node delivers it now, or the store is down
			return
		}
		defer release()
	}
	// Read the record only now, under the lease: another node may have
	// delivered some recipients (or all: the record is gone) meanwhile.
	m, err := r.store.Get(ctx, id)
	if errors.Is(err, queue.ErrNotFound) {
		r.mu.Lock()
		r.forgetLocked(id) // deleted by an administrator meanwhile
		r.mu.Unlock()
		return
	}
	if err != nil {
		r.log.Error("read queue record", "msgid", id, "err", err)
		r.deferEntry(id)
		return
	}
	if err := r.auditDown(); err != nil { // audit.go: no delivery that cannot be audited
		r.log.Warn("delivery deferred: audit log unavailable", "msgid", id, "err", err)
		r.deferEntry(id)
		return
	}
	now := r.cfg.Now()
	results := map[string]result{}
	if why, ok := r.startupLoss(id); ok {
		failLost(m, results, why)
		r.finish(ctx, m, results)
		return
	}
	redirects := map[string]*directory.Resolution{} // recipient → the redirect this attempt followed
	groups := map[string]*group{}
	var order []string
	for _, rc := range m.Recipients {
		if rc.State != queue.Queued && rc.State != queue.Held || rc.NextAttempt.After(now) {
			continue
		}
		t, res := r.route(ctx, m, rc.Address)
		if res != nil {
			results[rc.Address] = *res
			continue
		}
		if t.redirect != nil {
			redirects[rc.Address] = t.redirect
		}
		if err := r.precheck(ctx, m, t.ep); err != nil { // one recipient's missing certificate holds only it
			res := r.bodyFailure(m.ID, err)
			res.endpoint = epName(t.ep, rc.Address)
			results[rc.Address] = res
			continue
		}
		key := hopKey(t.ep, t.to)
		gk := key
		if t.ep.TLSOnly && r.cfg.Sealer != nil {
			gk += "|tls-only" // an administrator's TLS-only exception goes unsealed, in its own transaction
		}
		g := groups[gk]
		if g == nil {
			g = &group{key: key, hop: t.ep.NextHop}
			groups[gk] = g
			order = append(order, gk)
		}
		g.add(t, rc.Address)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, key := range order {
		g := groups[key]
		wg.Go(func() {
			var res map[string]result
			if g.hop.Kind == directory.HopHosted {
				res = r.deliverLocal(ctx, m, g)
			} else {
				res = r.deliverSMTP(ctx, m, g)
			}
			mu.Lock()
			defer mu.Unlock()
			for i, to := range g.to {
				rs, ok := res[to]
				if !ok {
					continue
				}
				rs.endpoint = epName(g.eps[i], to)
				for _, rcpt := range g.rcpts[i] {
					one := rs
					if one.outcome == delivered && !strings.EqualFold(rcpt, to) {
						one.text += "; redirected by the directory to " + to // in the log and the audit event
					}
					results[rcpt] = one
				}
			}
		})
	}
	wg.Wait()
	if why := lostIn(results); why != "" {
		failLost(m, results, why)
	}
	for rcpt, rs := range redirects {
		if res, ok := results[rcpt]; ok {
			res.redirect = rs
			results[rcpt] = res
		}
	}
	r.finish(ctx, m, results)
}

// deferEntry pushes a message's in-memory due time back when its record
// could not be read or written, so a broken store is not hammered.
func (r *Relay) deferEntry(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.pending[id]; ok {
		e.due = r.cfg.Now().Add(r.cfg.RetryMin)
		r.placeLocked(e)
	}
}

// epName names an endpoint in logs and audit events: its ID, or the
// address when it has none (a DSN's MX route).
func epName(ep directory.Endpoint, addr string) string {
	if ep.ID != "" {
		return ep.ID
	}
	return addr
}

// hopKey names the pool of connections a recipient's delivery uses.
func hopKey(ep directory.Endpoint, addr string) string {
	tlsMode := ep.NextHop.TLS
	if tlsMode == "" {
		tlsMode = directory.TLSVerified
	}
	switch ep.NextHop.Kind {
	case directory.HopHosted:
		return "maildir"
	case directory.HopHost:
		return "smtp:" + ep.NextHop.Host + "|" + string(tlsMode)
	default: // HopMX, and the secure choice for anything unknown
		return "mx:" + strings.ToLower(domainOf(addr)) + "|" + string(tlsMode)
	}
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return addr
}

// deliverLocal writes one copy per hosted wire address into its
// endpoint's Maildir.
func (r *Relay) deliverLocal(ctx context.Context, m queue.Message, g *group) map[string]result {
	out := map[string]result{}
	for i, to := range g.to {
		out[to] = r.deliverMaildir(ctx, m, g.eps[i], to, g.rcpts[i][0])
	}
	return out
}

// deliverMaildir delivers one copy into ep's mailbox. The folder is named
// by the endpoint, never by the recipient address: a domain endpoint has
// one mailbox, so addresses made up on port 25 cannot create folders. The
// copy's key is the queue ID and the mailbox, so one message reaches one
// mailbox once, however many of its recipients lead there, and a repeated
// attempt after a crash finds it already delivered.
func (r *Relay) deliverMaildir(ctx context.Context, m queue.Message, ep directory.Endpoint, to, rcpt string) result {
	if r.cfg.MaildirRoot == "" {
		return failure(temporary, 3, 5, "no Maildir root configured for hosted endpoints") // RFC 3463 §3.4 X.3.5
	}
	box := strings.ToLower(ep.Address)
	if box == "" || strings.ContainsAny(box, "/\\\x00") || strings.HasPrefix(box, ".") {
		return failure(permanent, 1, 3, "endpoint address cannot name a mailbox folder") // §3.2 X.1.3
	}
	body, err := r.openForMailbox(ctx, m, ep)
	if err != nil {
		return r.bodyFailure(m.ID, err)
	}
	defer body.Close()
	sum := sha256.Sum256([]byte(box))
	key := m.ID + "-" + hex.EncodeToString(sum[:8])
	// RFC 5321 §4.4: the final delivery adds Return-Path. Delivered-To is
	// the address delivered to; X-Original-To (as Postfix writes it) the
	// recipient the sender used, when a redirect changed it.
	trace := fmt.Sprintf("Return-Path: <%s>\r\nDelivered-To: %s\r\n", m.From, to)
	if !strings.EqualFold(to, rcpt) {
		trace += "X-Original-To: " + rcpt + "\r\n"
	}
	tap := newDeliveryTap(body, r.wantsReceipt(m, rcpt))
	br := &bodyReader{r: tap}
	err = maildir.Deliver(filepath.Join(r.cfg.MaildirRoot, box), key, io.MultiReader(strings.NewReader(trace), br))
	if br.err != nil {
		return r.bodyFailure(m.ID, br.err)
	}
	if err != nil {
		r.log.Error("maildir delivery failed", "msgid", m.ID, "rcpt", to, "endpoint", ep.Address, "err", err)
		return failure(temporary, 2, 0, "local mailbox unavailable; will retry") // §3.3 X.2.0
	}
	r.noteReport(m, box, tap)
	return result{outcome: delivered, status: "2.0.0", text: "delivered to mailbox", kind: "maildir",
		attachments: tap.attachments(), bytes: tap.n}
}

// wantsReceipt reports whether queued recipient rcpt asked for a success
// notice, so its delivery counts what a receipt names.
func (r *Relay) wantsReceipt(m queue.Message, rcpt string) bool {
	for _, rc := range m.Recipients {
		if rc.Address == rcpt {
			return wants(rc, notifySuccess)
		}
	}
	return false
}

// openBody returns the message as it should leave: the spool body, sealed
// for eps when a Sealer is configured. A Sealer that refuses before writing
// anything (ErrHold) is reported here, before any connection is used.
func (r *Relay) openBody(ctx context.Context, m queue.Message, eps []directory.Endpoint) (io.ReadCloser, error) {
	if isNotice(m) {
		return r.signNotice(ctx, m)
	}
	if r.cfg.Sealer == nil {
		return r.spoolThrough(m, nil)
	}
	return r.spoolThrough(m, func(f io.Reader, w io.Writer) error {
		return r.cfg.Sealer.Seal(ctx, m, eps, f, w)
	})
}

// spoolThrough opens m's spooled body and, when transform is not nil, runs
// it over the body in its own goroutine and returns what it writes. A
// transform that fails before writing anything (a hold, a quarantine) is
// reported here, before the caller uses a connection or a mailbox.
func (r *Relay) spoolThrough(m queue.Message, transform func(f io.Reader, w io.Writer) error) (io.ReadCloser, error) {
	f, err := r.spool.Open(m.ID)
	if err != nil {
		return nil, fmt.Errorf("open spooled body: %w", err)
	}
	if transform == nil {
		return f, nil
	}
	pr, pw := io.Pipe()
	sf := &bodyReader{r: f} // the spool's own error, however the transform wraps it
	go func() {
		err := transform(sf, pw)
		if sf.err != nil {
			err = fmt.Errorf("read spooled body: %w", sf.err)
		}
		f.Close()
		pw.CloseWithError(err)
	}()
	body := r.bufs.piped(pr)
	if _, err := body.Peek(1); err != nil && err != io.EOF {
		pr.CloseWithError(err)
		body.Close()
		return nil, err
	}
	return body, nil
}

// bodyFailure maps an error from opening, reading or sealing the body. A
// hold's words go to the sender; anything else (it may hold file paths)
// goes only to the log.
func (r *Relay) bodyFailure(id string, err error) result {
	if errors.Is(err, ErrHold) {
		return failure(held, 7, 5, err.Error()) // RFC 3463 §3.8 X.7.5: a needed key is not available
	}
	if errors.Is(err, ErrQuarantine) { // the Opener kept it and told the owner; the sender learns why
		return failure(permanent, 7, 5, err.Error()) // §3.8 X.7.5: could not validate or decrypt
	}
	if bodyLost(err) {
		return lostResult(err.Error())
	}
	r.log.Error("queued message unreadable or could not be protected", "msgid", id, "err", err)
	return failure(temporary, 3, 0, "the queued message could not be read or protected; will retry")
}

// backoff is the delay before retry number attempts (1-based): RetryMin
// doubling up to RetryMax, with jitter drawn from its upper half so that
// deferred messages spread out.
func (r *Relay) backoff(attempts int) time.Duration {
	d := r.cfg.RetryMin
	for i := 1; i < attempts && d < r.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, r.cfg.RetryMax)
	half := d / 2
	return half + rand.N(d-half+1)
}
