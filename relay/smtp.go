package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"nhsrelay/directory"
	"nhsrelay/relay/queue"
)

// hop is one next hop: a concurrency limit and its idle connections.
type hop struct {
	sem   chan struct{}
	users int // deliveries holding the hop (hopFor..releaseHop); guarded by Relay.mu

	mu   sync.Mutex
	idle []*smtpConn
}

// hopFor returns the hop for key, created on first use; the caller must
// releaseHop it. A hop in use is never pruned, so its concurrency limit
// holds.
func (r *Relay) hopFor(key string) *hop {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.hops[key]
	if h == nil {
		h = &hop{sem: make(chan struct{}, r.cfg.HopConcurrency)}
		r.hops[key] = h
	}
	h.users++
	return h
}

func (r *Relay) releaseHop(h *hop) {
	r.mu.Lock()
	h.users--
	r.mu.Unlock()
}

// get returns an idle connection that still answers RSET, or nil. The RSET
// is bounded by ResetTimeout and by ctx: go-smtp would otherwise wait its
// 5-minute command timeout on a peer that went silent while the connection
// sat in the pool, holding one of the hop's slots.
func (h *hop) get(ctx context.Context, idleTimeout, resetTimeout time.Duration) *smtpConn {
	for {
		h.mu.Lock()
		if len(h.idle) == 0 {
			h.mu.Unlock()
			return nil
		}
		c := h.idle[len(h.idle)-1]
		h.idle = h.idle[:len(h.idle)-1]
		h.mu.Unlock()
		if time.Since(c.lastUsed) > idleTimeout {
			c.close()
			continue
		}
		// RFC 5321 §4.1.1.5: RSET clears any transaction state; it is also
		// our check that the server has not dropped the connection.
		// go-smtp sets the connection's deadline from CommandTimeout for
		// each command, so the short bound goes there.
		c.client.CommandTimeout = resetTimeout
		stop := context.AfterFunc(ctx, func() { c.raw.Close() })
		err := c.client.Reset()
		c.client.CommandTimeout = sessionTimeout
		if !stop() || err != nil {
			c.close()
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		return c
	}
}

func (h *hop) put(c *smtpConn) {
	c.lastUsed = time.Now()
	h.mu.Lock()
	h.idle = append(h.idle, c)
	h.mu.Unlock()
}

// closeIdle closes connections idle longer than maxIdle (all if 0), then
// forgets hops that are not in use and have no connection left, so the
// map does not grow with every domain ever delivered to.
func (r *Relay) closeIdle(maxIdle time.Duration) {
	defer r.pruneHops()
	r.mu.Lock()
	hops := make([]*hop, 0, len(r.hops))
	for _, h := range r.hops {
		hops = append(hops, h)
	}
	r.mu.Unlock()
	for _, h := range hops {
		h.mu.Lock()
		keep := h.idle[:0]
		var drop []*smtpConn
		for _, c := range h.idle {
			if maxIdle > 0 && time.Since(c.lastUsed) <= maxIdle {
				keep = append(keep, c)
			} else {
				drop = append(drop, c)
			}
		}
		h.idle = keep
		h.mu.Unlock()
		for _, c := range drop {
			c.quit()
		}
	}
}

// pruneHops drops hops with no delivery holding them and no pooled
// connection. hopFor counts users under r.mu, so none can appear while
// this runs.
func (r *Relay) pruneHops() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, h := range r.hops {
		if h.users > 0 {
			continue
		}
		h.mu.Lock()
		empty := len(h.idle) == 0
		h.mu.Unlock()
		if empty {
			delete(r.hops, k)
		}
	}
}

// deliverSMTP sends one message to one next hop in a single transaction
// carrying all of that hop's recipients.
func (r *Relay) deliverSMTP(ctx context.Context, m queue.Message, g *group) map[string]result {
	all := func(res result) map[string]result {
		out := make(map[string]result, len(g.to))
		for _, a := range g.to {
			out[a] = res
		}
		return out
	}
	h := r.hopFor(g.key)
	defer r.releaseHop(h)
	select {
	case h.sem <- struct{}{}:
	case <-ctx.Done():
		return all(failure(temporary, 4, 7, "attempt timed out waiting for the next hop")) // RFC 3463 §3.5 X.4.7
	}
	defer func() { <-h.sem }()

	body, err := r.openBody(ctx, m, g.eps)
	if err != nil {
		return all(r.bodyFailure(m.ID, err))
	}
	defer body.Close()

	c := h.get(ctx, r.cfg.IdleTimeout, r.cfg.ResetTimeout)
	if c == nil {
		var res *result
		c, res = r.connect(ctx, g)
		if res != nil {
			r.log.Warn("next hop unreachable", "msgid", m.ID, "hop", g.key, "reason", res.text)
			return all(*res)
		}
	}
	// go-smtp sets its own deadline per command, so the attempt's timeout
	// is enforced by closing the connection, which unblocks any read.
	stop := context.AfterFunc(ctx, func() { c.raw.Close() })
	out, reusable := r.transact(m, g, c, body)
	if !stop() || !reusable {
		c.close()
	} else {
		h.put(c)
	}
	for a, res := range out {
		res.remoteMTA, res.tls, res.peer = c.host, c.tls, c.peer
		out[a] = res
	}
	return out
}

// transact runs MAIL, RCPT per recipient and DATA on c. reusable is false
// when the connection can no longer be trusted to be in step.
func (r *Relay) transact(m queue.Message, g *group, c *smtpConn, body io.Reader) (out map[string]result, reusable bool) {
	out = make(map[string]result, len(g.to))
	setAll := func(addrs []string, res result) {
		for _, a := range addrs {
			out[a] = res
		}
	}
	opts := &smtp.MailOptions{}
	if r.cfg.Sealer == nil && m.Size > 0 {
		opts.Size = m.Size // RFC 1870: lets the server refuse early
	}
	dsnOK, _ := c.client.Extension("DSN")
	if dsnOK { // RFC 3461 §4.4, §4.3: go-smtp sends them only to a server offering DSN
		opts.EnvelopeID = m.EnvID
		if m.Ret != "" {
			// QUIRK: RET=FULL is passed on as HDRS. A DSN from a hop
			// further on would carry the message as that hop saw it,
			// and a clinical message must never come back in clear.
			opts.Return = smtp.DSNReturnHeaders
		}
	}
	if err := c.client.Mail(m.From, opts); err != nil {
		res, ok := replyResult(err, "MAIL FROM")
		setAll(g.to, res)
		return out, ok
	}
	var accepted []string
	for i, a := range g.to {
		if err := c.client.Rcpt(a, rcptOptions(m, g.rcpts[i][0], dsnOK)); err != nil {
			res, ok := replyResult(err, "RCPT TO")
			if !ok { // the transaction is lost for this and every later recipient
				setAll(accepted, res)
				setAll(g.to[i:], res)
				return out, false
			}
			out[a] = res // RFC 5321 §3.3: a refused RCPT leaves the others in the transaction
			continue
		}
		accepted = append(accepted, a)
	}
	if len(accepted) == 0 {
		return out, true // the next use starts with RSET
	}
	w, err := c.client.Data()
	if err != nil {
		res, ok := replyResult(err, "DATA")
		setAll(accepted, res)
		return out, ok
	}
	br := &bodyReader{r: body}
	if _, err := r.bufs.copyBody(w, br); err != nil {
		// SMTP cannot abort DATA: dropping the connection before the final
		// dot is the only way not to send a partial message.
		if br.err != nil {
			setAll(accepted, r.bodyFailure(m.ID, br.err))
		} else {
			setAll(accepted, netFailure(err, "sending the message"))
		}
		return out, false
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		res, ok := replyResult(err, "end of DATA")
		setAll(accepted, res)
		return out, ok
	}
	setAll(accepted, result{outcome: delivered, status: "2.0.0", kind: "smtp", dsnPassed: dsnOK, attachments: -1,
		text: "accepted by next hop", reply: "250 " + oneLine(resp.StatusText)})
	return out, true
}

// rcptOptions passes on the DSN request of the queued recipient rcpt
// (RFC 3461 §4.1, §4.2) to a next hop that offers DSN; nil otherwise.
func rcptOptions(m queue.Message, rcpt string, dsnOK bool) *smtp.RcptOptions {
	if !dsnOK {
		return nil
	}
	for _, rc := range m.Recipients {
		if rc.Address != rcpt {
			continue
		}
		o := &smtp.RcptOptions{}
		for _, n := range rc.Notify {
			o.Notify = append(o.Notify, smtp.DSNNotify(n))
		}
		typ, addr, _ := strings.Cut(rc.ORcpt, ";")
		switch t := smtp.DSNAddressType(strings.ToUpper(typ)); t {
		case smtp.DSNAddressTypeRFC822, smtp.DSNAddressTypeUTF8: // what smtpd accepted; go-smtp knows no other
			o.OriginalRecipientType, o.OriginalRecipient = t, addr
		}
		return o
	}
	return nil
}

// replyResult maps an error from a command: a reply from the server keeps
// the connection usable, anything else (I/O, timeout) does not.
func replyResult(err error, stage string) (result, bool) {
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		return netFailure(err, stage), false
	}
	o, class := temporary, 4
	if se.Code >= 500 {
		o, class = permanent, 5
	}
	status := fmt.Sprintf("%d.0.0", class)
	if se.EnhancedCode[0] == class { // a code whose class disagrees is ignored
		status = fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
	}
	reply := fmt.Sprintf("%d %s %s", se.Code, status, oneLine(se.Message))
	text := fmt.Sprintf("next hop answered %s with %s", stage, reply)
	return result{outcome: o, status: status, text: text, reply: reply}, true
}

// netFailure words an I/O error; it is always temporary (RFC 3463 §3.5
// X.4.2 bad connection).
func netFailure(err error, stage string) result {
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		return failure(temporary, 4, 2, "connection timed out during "+stage)
	}
	return failure(temporary, 4, 2, "connection lost during "+stage)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 400 {
		s = s[:400]
	}
	return s
}

// candidates lists the hosts to try for a group, in order: the configured
// host, or the MX hosts of the domain by preference, or the domain itself
// when it has no MX (RFC 5321 §5.1 implicit MX).
func (r *Relay) candidates(ctx context.Context, g *group) ([]string, *result) {
	if g.hop.Kind == directory.HopHost {
		hostport := g.hop.Host
		if _, _, err := net.SplitHostPort(hostport); err != nil {
			hostport = net.JoinHostPort(hostport, "25")
		}
		return []string{hostport}, nil
	}
	domain := domainOf(g.to[0])
	mxs, err := r.cfg.LookupMX(ctx, domain)
	var dnsErr *net.DNSError
	switch {
	case err != nil && errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		mxs = nil
	case err != nil:
		res := failure(temporary, 4, 3, "MX lookup for "+domain+" failed; will retry") // RFC 3463 §3.5 X.4.3
		return nil, &res
	}
	if len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == "") {
		res := failure(permanent, 1, 10, domain+" publishes a null MX: it accepts no mail") // RFC 7505 §3
		return nil, &res
	}
	if len(mxs) == 0 {
		return []string{net.JoinHostPort(domain, "25")}, nil // RFC 5321 §5.1: the domain as the only MX
	}
	// RFC 5321 §5.1: lowest preference first; equal preferences in the
	// resolver's (randomised) order.
	sorted := append([]*net.MX(nil), mxs...)
	for i := 1; i < len(sorted); i++ {
		for j := i; j > 0 && sorted[j].Pref < sorted[j-1].Pref; j-- {
			sorted[j], sorted[j-1] = sorted[j-1], sorted[j]
		}
	}
	var out []string
	for _, mx := range sorted {
		if h := strings.TrimSuffix(mx.Host, "."); h != "" {
			out = append(out, net.JoinHostPort(h, "25"))
		}
	}
	return out, nil
}

// connect opens a session to the first candidate that gives one, with the
// transport security the hop requires.
func (r *Relay) connect(ctx context.Context, g *group) (*smtpConn, *result) {
	cands, res := r.candidates(ctx, g)
	if res != nil {
		return nil, res
	}
	var last result
	for _, hp := range cands {
		c, err := r.open(ctx, hp, g.hop.TLS)
		if err == nil {
			return c, nil
		}
		last = err.result
		r.log.Info("next-hop candidate failed", "hop", g.key, "host", hp, "reason", last.text)
		if err.final {
			break
		}
	}
	return nil, &last
}
