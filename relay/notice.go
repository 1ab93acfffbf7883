package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"nhsrelay/directory"
	"nhsrelay/relay/queue"
)

// NoticeSigner signs notice mail as it leaves (DKIM, RFC 6376; the
// notices package has the keys). It reads the spooled message and writes
// the signed one to w. Notice mail is never sent unsigned: with no
// NoticeSigner configured, or when Sign fails, the recipient is deferred.
type NoticeSigner interface {
	Sign(ctx context.Context, m queue.Message, body io.Reader, w io.Writer) error
}

// NoticeOutcome is what happened to one recipient of a notice message in
// one delivery attempt.
type NoticeOutcome struct {
	QueueID   string
	From      string // the reverse-path: the notice's VERP address
	Recipient string
	Outcome   string // "delivered", "deferred" or "failed"
	Status    string // enhanced status code (RFC 3463)
	Text      string // in words
	RemoteMTA string
	Reply     string // the remote SMTP reply, if any
	Received  time.Time
	Attempts  int
	Time      time.Time
}

// NoticeObserver is told each notice recipient's outcome before the queue
// record is updated, so a crash may repeat an outcome but never lose one:
// NoticeOutcome must be idempotent. It returns true when it tells the
// sender itself (a notice's status and webhooks): then no DSN is sent.
// Notice mail it does not know (an SMTP notice account's) gets DSNs to
// its sender as any mail does.
type NoticeObserver interface {
	NoticeOutcome(ctx context.Context, o NoticeOutcome) (handled bool)
}

// MTASTSPolicy is a domain's MTA-STS policy (RFC 8461 §3.2).
type MTASTSPolicy struct {
	Mode string   // "enforce", "testing" or "none"
	MX   []string // patterns: "mx.example.org" or "*.example.org"
}

// MTASTS looks up a domain's policy; (nil, nil) when it publishes none.
// An error is treated as no policy (RFC 8461 §5: a sender that cannot
// fetch a policy it has not cached delivers as without one).
type MTASTS interface {
	Policy(ctx context.Context, domain string) (*MTASTSPolicy, error)
}

// TLS modes of notice mail's next hops, internal to the relay: the
// directory never sets them.
const (
	// tlsNotice requires STARTTLS; the certificate is verified when the
	// domain's MTA-STS policy enforces it (then mode becomes TLSVerified).
	tlsNotice directory.TLSMode = "notice-starttls"
	// tlsEncryptedOnly requires STARTTLS with TLS 1.2+ but does not verify
	// the certificate: the open internet's MX hosts without MTA-STS
	// rarely have one that verifies (RFC 8461 §1, RFC 7672 §1.3), and a
	// clear-text fallback is never taken.
	tlsEncryptedOnly directory.TLSMode = "encrypted-unverified"
)

func isNotice(m queue.Message) bool { return m.Kind == string(KindNotice) }

// noticeRoute sends notice mail to the MX hosts of the recipient's domain.
// Never to an address the directory knows: notice mail is for patients'
// own mailboxes, and a directory endpoint gets clinical mail only.
func (r *Relay) noticeRoute(ctx context.Context, addr string) (target, *result) {
	if _, err := r.cfg.Directory.Lookup(ctx, addr); err == nil {
		res := failure(permanent, 7, 1, "notice mail goes only to patients' own mailboxes, and this address is an NHS directory endpoint") // RFC 3463 §3.8
		return target{}, &res
	} else if !errors.Is(err, directory.ErrNotFound) {
		res := failure(temporary, 3, 0, "directory lookup failed; will retry")
		return target{}, &res
	}
	ep := directory.Endpoint{Address: addr, NextHop: directory.NextHop{Kind: directory.HopMX, TLS: tlsNotice}}
	return target{ep: ep, to: addr}, nil
}

// noticeCandidates applies the domain's MTA-STS policy to the MX hosts
// (RFC 8461 §4): in enforce mode only MX hosts the policy names are used,
// with a verified certificate; otherwise STARTTLS is still required but
// not verified.
func (r *Relay) noticeCandidates(ctx context.Context, domain string, cands []string) ([]string, directory.TLSMode, *result) {
	if r.cfg.MTASTS == nil {
		return cands, tlsEncryptedOnly, nil
	}
	p, err := r.cfg.MTASTS.Policy(ctx, domain)
	if err != nil {
		r.log.Warn("MTA-STS policy lookup failed; delivering as without a policy", "domain", domain, "err", err)
	}
	if p == nil || p.Mode != "enforce" {
		return cands, tlsEncryptedOnly, nil
	}
	var ok []string
	for _, hp := range cands {
		host, _, _ := strings.Cut(hp, ":")
		if mxMatches(p.MX, host) {
			ok = append(ok, hp)
		}
	}
	if len(ok) == 0 {
		res := failure(temporary, 7, 0, "no MX host of "+domain+" matches its MTA-STS policy (RFC 8461 §4.1); nothing was sent")
		return nil, "", &res
	}
	return ok, directory.TLSVerified, nil
}

// mxMatches is RFC 8461 §4.1: a pattern matches the host exactly, or
// "*.example.org" matches exactly one label more on the left.
func mxMatches(patterns []string, host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, p := range patterns {
		p = strings.ToLower(strings.TrimSuffix(p, "."))
		if rest, ok := strings.CutPrefix(p, "*."); ok {
			if i := strings.IndexByte(host, '.'); i > 0 && host[i+1:] == rest {
				return true
			}
		} else if p == host {
			return true
		}
	}
	return false
}

// signNotice is openBody for notice mail: DKIM-signed, never sealed.
func (r *Relay) signNotice(ctx context.Context, m queue.Message) (io.ReadCloser, error) {
	if r.cfg.NoticeSigner == nil {
		return nil, errors.New("no DKIM signer configured for notice mail")
	}
	return r.spoolThrough(m, func(f io.Reader, w io.Writer) error {
		return r.cfg.NoticeSigner.Sign(ctx, m, f, w)
	})
}

// noticeOutcomes tells the NoticeObserver what an attempt did for each
// recipient of a notice message; handled is true if it took every one.
func (r *Relay) noticeOutcomes(ctx context.Context, m queue.Message, final map[string]result, now time.Time) (handled bool) {
	if r.cfg.NoticeObserver == nil {
		return false
	}
	handled = true
	for _, rc := range m.Recipients {
		res, ok := final[rc.Address]
		if !ok || res.outcome == held {
			continue
		}
		o := map[outcome]string{delivered: "delivered", temporary: "deferred", permanent: "failed"}[res.outcome]
		if !r.cfg.NoticeObserver.NoticeOutcome(ctx, NoticeOutcome{QueueID: m.ID, From: m.From, Recipient: rc.Address,
			Outcome: o, Status: res.status, Text: res.text, RemoteMTA: res.remoteMTA, Reply: res.reply,
			Received: m.Received, Attempts: rc.Attempts + 1, Time: now}) {
			handled = false
		}
	}
	return handled
}

// domainLimiter is a token bucket per destination domain: rate per
// minute, burst at once.
type domainLimiter struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newDomainLimiter(perMinute, burst int, now func() time.Time) *domainLimiter {
	return &domainLimiter{rate: float64(perMinute) / 60, burst: float64(burst), now: now, buckets: map[string]*bucket{}}
}

// reserve takes one token for domain and says how long to wait before
// using it (0: now).
func (l *domainLimiter) reserve(domain string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.buckets[domain]
	if b == nil {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[domain] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	b.tokens--
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / l.rate * float64(time.Second))
}

// cancel gives back a token reserve took and did not use.
func (l *domainLimiter) cancel(domain string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.buckets[domain]; b != nil {
		b.tokens = min(l.burst, b.tokens+1)
	}
}

// maxRateWait is the longest a delivery waits for its domain's rate
// limit; beyond it the recipient is deferred and retried.
const maxRateWait = 30 * time.Second

// waitNoticeRate holds a notice delivery to its domain's rate.
func (r *Relay) waitNoticeRate(ctx context.Context, domain string) *result {
	d := r.noticeRate.reserve(strings.ToLower(domain))
	if d == 0 {
		return nil
	}
	if d > maxRateWait {
		r.noticeRate.cancel(strings.ToLower(domain))
		res := failure(temporary, 4, 5, fmt.Sprintf("rate limit for %s (%d a minute) reached; will retry", domain, r.cfg.NoticeRatePerDomain)) // RFC 3463 X.4.5 congestion
		return &res
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		res := failure(temporary, 4, 7, "attempt timed out waiting for the rate limit of "+domain)
		return &res
	}
}
