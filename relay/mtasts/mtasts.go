// Package mtasts looks up domains' MTA-STS policies (RFC 8461) for the
// relay's notice mail to the open internet: the TXT record at
// _mta-sts.<domain> says a policy exists and names its id (§3.1); the
// policy is fetched over verified HTTPS from
// https://mta-sts.<domain>/.well-known/mta-sts.txt, no redirects followed
// (§3.3), and cached for its max_age, fetched again when the id changes
// (§5.1). A domain whose policy cannot be fetched and is not cached is
// delivered to as without one (§5, "fail open" on the policy, never on
// TLS: the relay still requires STARTTLS).
package mtasts

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"nhsrelay/relay"
)

// Config is what New needs; zero fields take the defaults named.
type Config struct {
	LookupTXT func(ctx context.Context, name string) ([]string, error) // nil → net.DefaultResolver
	Client    *http.Client                                             // nil → 60 s timeout, no redirects
	Now       func() time.Time                                         // nil → time.Now
	Logger    *slog.Logger
}

// Resolver finds and caches policies. It implements relay.MTASTS.
type Resolver struct {
	cfg   Config
	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	id      string
	policy  *relay.MTASTSPolicy
	expires time.Time
}

// New returns a Resolver.
func New(cfg Config) *Resolver {
	if cfg.LookupTXT == nil {
		cfg.LookupTXT = net.DefaultResolver.LookupTXT
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 60 * time.Second}
	}
	cfg.Client.CheckRedirect = func(*http.Request, []*http.Request) error {
		return errors.New("MTA-STS: redirects are not followed (RFC 8461 §3.3)")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Resolver{cfg: cfg, cache: map[string]cached{}}
}

// maxPolicyBytes bounds a policy body (RFC 8461 §3.3 suggests 64 KiB).
const maxPolicyBytes = 64 << 10

// Policy returns domain's policy, (nil, nil) when it publishes none.
func (r *Resolver) Policy(ctx context.Context, domain string) (*relay.MTASTSPolicy, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	now := r.cfg.Now()
	r.mu.Lock()
	c, ok := r.cache[domain]
	r.mu.Unlock()
	if ok && now.After(c.expires) {
		ok = false
	}
	id, err := r.txtID(ctx, domain)
	switch {
	case err != nil && ok: // §5.1: a cached policy is used when DNS fails
		return c.policy, nil
	case err != nil:
		return nil, err
	case id == "":
		return nil, nil
	case ok && c.id == id:
		return c.policy, nil
	}
	p, maxAge, err := r.fetch(ctx, domain)
	if err != nil {
		if ok {
			return c.policy, nil
		}
		return nil, err
	}
	r.mu.Lock()
	r.cache[domain] = cached{id: id, policy: p, expires: now.Add(maxAge)}
	r.mu.Unlock()
	return p, nil
}

// txtID reads the id of the domain's "v=STSv1" TXT record (§3.1); "" if
// it has none. More than one STSv1 record is no policy.
func (r *Resolver) txtID(ctx context.Context, domain string) (string, error) {
	txts, err := r.cfg.LookupTXT(ctx, "_mta-sts."+domain)
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var ids []string
	for _, t := range txts {
		if !strings.HasPrefix(t, "v=STSv1;") && t != "v=STSv1" {
			continue
		}
		id := ""
		for _, f := range strings.Split(t, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(f), "="); ok && k == "id" {
				id = v
			}
		}
		ids = append(ids, id)
	}
	if len(ids) != 1 || ids[0] == "" || len(ids[0]) > 32 {
		return "", nil
	}
	return ids[0], nil
}

// fetch gets and parses the policy file.
func (r *Resolver) fetch(ctx context.Context, domain string) (*relay.MTASTSPolicy, time.Duration, error) {
	url := "https://mta-sts." + domain + "/.well-known/mta-sts.txt"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := r.cfg.Client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("mtasts: fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("mtasts: fetch %s: %s", url, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		return nil, 0, fmt.Errorf("mtasts: %s has Content-Type %q, want text/plain (§3.2)", url, ct)
	}
	return Parse(io.LimitReader(resp.Body, maxPolicyBytes))
}

// Parse reads a policy file (RFC 8461 §3.2): version STSv1, mode, one or
// more mx (not needed for mode none), max_age up to a year.
func Parse(rd io.Reader) (*relay.MTASTSPolicy, time.Duration, error) {
	p := &relay.MTASTSPolicy{}
	var version string
	maxAge := -1
	sc := bufio.NewScanner(rd)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "version":
			version = v
		case "mode":
			p.Mode = v
		case "mx":
			p.MX = append(p.MX, v)
		case "max_age":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, 0, fmt.Errorf("mtasts: max_age %q", v)
			}
			maxAge = min(n, 31557600)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, 0, err
	}
	switch {
	case version != "STSv1":
		return nil, 0, fmt.Errorf("mtasts: version %q, want STSv1", version)
	case p.Mode != "enforce" && p.Mode != "testing" && p.Mode != "none":
		return nil, 0, fmt.Errorf("mtasts: mode %q", p.Mode)
	case p.Mode != "none" && len(p.MX) == 0:
		return nil, 0, errors.New("mtasts: no mx in an enforce or testing policy")
	case maxAge < 0:
		return nil, 0, errors.New("mtasts: no max_age")
	}
	return p, time.Duration(maxAge) * time.Second, nil
}
