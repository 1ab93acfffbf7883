package relay

import (
	"bufio"
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
}

// failure builds a non-delivered result; the enhanced code's class follows
// the outcome, so the two cannot disagree.
func failure(o outcome, subject, detail int, text string) result {
	class := 4
	if o == permanent || o == held {
		class = 5
	}
	return result{outcome: o, status: fmt.Sprintf("%d.%d.%d", class, subject, detail), text: text}
}

// group is the recipients of one message that share a next hop.
type group struct {
	key   string // hop key: "maildir", "smtp:<host:port>|<tls>", "mx:<domain>|<tls>"
	hop   directory.NextHop
	eps   []directory.Endpoint
	addrs []string
}

// attempt delivers the due recipients of message id once and records what
// happened.
func (r *Relay) attempt(ctx context.Context, id string) {
	m, err := r.store.Get(ctx, id)
	if errors.Is(err, queue.ErrNotFound) {
		r.mu.Lock()
		delete(r.pending, id) // deleted by an administrator meanwhile
		r.mu.Unlock()
		return
	}
	if err != nil {
		r.log.Error("read queue record", "msgid", id, "err", err)
		r.deferEntry(id)
		return
	}
	now := r.cfg.Now()
	results := map[string]result{}
	groups := map[string]*group{}
	var order []string
	for _, rc := range m.Recipients {
		if rc.State != queue.Queued || rc.NextAttempt.After(now) {
			continue
		}
		ep, err := r.cfg.Directory.Lookup(ctx, rc.Address)
		if err != nil {
			results[rc.Address] = lookupFailure(err)
			continue
		}
		if err := r.precheck(ctx, m, ep); err != nil { // one recipient's missing certificate holds only it
			res := r.bodyFailure(m.ID, err)
			res.endpoint = endpointName(&group{eps: []directory.Endpoint{ep}, addrs: []string{rc.Address}}, rc.Address)
			results[rc.Address] = res
			continue
		}
		key := hopKey(ep, rc.Address)
		gk := key
		if ep.TLSOnly && r.cfg.Sealer != nil {
			gk += "|tls-only" // an administrator's TLS-only exception goes unsealed, in its own transaction
		}
		g := groups[gk]
		if g == nil {
			g = &group{key: key, hop: ep.NextHop}
			groups[gk] = g
			order = append(order, gk)
		}
		g.eps = append(g.eps, ep)
		g.addrs = append(g.addrs, rc.Address)
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
			for a, rs := range res {
				rs.endpoint = endpointName(g, a)
				results[a] = rs
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	r.finish(ctx, m, results)
}

// deferEntry pushes a message's in-memory due time back when its record
// could not be read, so a broken store is not hammered.
func (r *Relay) deferEntry(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.pending[id]; ok {
		e.due = r.cfg.Now().Add(r.cfg.RetryMin)
		r.pending[id] = e
	}
}

func endpointName(g *group, addr string) string {
	for i, a := range g.addrs {
		if a == addr && g.eps[i].ID != "" {
			return g.eps[i].ID
		}
	}
	return addr
}

// lookupFailure maps a directory error to a recipient outcome. The intake
// checked the recipient at RCPT time, so a change since is told in words.
func lookupFailure(err error) result {
	var nv *directory.NotVerifiedError
	switch {
	case errors.Is(err, directory.ErrNotFound):
		return failure(permanent, 1, 1, "no verified NHS endpoint has this address any more") // RFC 3463 §3.2
	case errors.As(err, &nv):
		// A suspension may be lifted: retry until the give-up time.
		return failure(temporary, 7, 1, "endpoint not verified for clinical mail: "+nv.Reason) // §3.8
	default:
		return failure(temporary, 3, 0, "directory lookup failed; will retry")
	}
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

// deliverLocal writes one copy per hosted recipient into its Maildir.
func (r *Relay) deliverLocal(ctx context.Context, m queue.Message, g *group) map[string]result {
	out := map[string]result{}
	for i, addr := range g.addrs {
		out[addr] = r.deliverMaildir(ctx, m, g.eps[i], addr)
	}
	return out
}

func (r *Relay) deliverMaildir(ctx context.Context, m queue.Message, ep directory.Endpoint, addr string) result {
	if r.cfg.MaildirRoot == "" {
		return failure(temporary, 3, 5, "no Maildir root configured for hosted endpoints") // RFC 3463 §3.4 X.3.5
	}
	box := strings.ToLower(addr)
	if box == "" || strings.ContainsAny(box, "/\\\x00") || strings.HasPrefix(box, ".") {
		return failure(permanent, 1, 3, "address cannot name a mailbox folder") // §3.2 X.1.3
	}
	body, err := r.openForMailbox(ctx, m, ep)
	if err != nil {
		return r.bodyFailure(m.ID, err)
	}
	defer body.Close()
	sum := sha256.Sum256([]byte(box))
	key := m.ID + "-" + hex.EncodeToString(sum[:8])
	// RFC 5321 §4.4: the final delivery adds Return-Path.
	trace := fmt.Sprintf("Return-Path: <%s>\r\nDelivered-To: %s\r\n", m.From, addr)
	br := &bodyReader{r: body}
	err = maildir.Deliver(filepath.Join(r.cfg.MaildirRoot, box), key, io.MultiReader(strings.NewReader(trace), br))
	if br.err != nil {
		return r.bodyFailure(m.ID, br.err)
	}
	if err != nil {
		r.log.Error("maildir delivery failed", "msgid", m.ID, "rcpt", addr, "err", err)
		return failure(temporary, 2, 0, "local mailbox unavailable; will retry") // §3.3 X.2.0
	}
	return result{outcome: delivered, status: "2.0.0", text: "delivered to mailbox", kind: "maildir"}
}

// openBody returns the message as it should leave: the spool body, sealed
// for eps when a Sealer is configured. A Sealer that refuses before writing
// anything (ErrHold) is reported here, before any connection is used.
func (r *Relay) openBody(ctx context.Context, m queue.Message, eps []directory.Endpoint) (io.ReadCloser, error) {
	f, err := r.spool.Open(m.ID)
	if err != nil {
		return nil, fmt.Errorf("open spooled body: %w", err)
	}
	if r.cfg.Sealer == nil {
		return f, nil
	}
	pr, pw := io.Pipe()
	go func() {
		err := r.cfg.Sealer.Seal(ctx, m, eps, f, pw)
		f.Close()
		pw.CloseWithError(err)
	}()
	br := bufio.NewReaderSize(pr, 64<<10)
	if _, err := br.Peek(1); err != nil && err != io.EOF {
		pr.CloseWithError(err)
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{br, pr}, nil
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
