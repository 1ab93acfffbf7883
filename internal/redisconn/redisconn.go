package redisconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// MinVersion is the oldest Redis the cluster works with: XAUTOCLAIM, which
// reclaims a crashed node's stream entries, came in 6.2.
const MinVersion = "6.2.0"

// ErrNotDurable means Redis would acknowledge a write before it is on disk.
var ErrNotDurable = errors.New("redis does not fsync each write before replying")

// ParseURL reads a redis:// or rediss:// (TLS) URL, with an optional
// password ("rediss://:secret@host:6380/0"), or unix:///path/redis.sock.
// With rediss, TLS 1.2 is the least accepted and the server's certificate
// is verified against the system roots.
func ParseURL(raw string) (*redis.Options, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("not a URL: %w", errors.Unwrap(err))
	}
	switch u.Scheme {
	case "redis", "rediss", "unix":
	default:
		return nil, fmt.Errorf("scheme %q: want redis://, rediss:// (TLS) or unix://", u.Scheme)
	}
	opt, err := redis.ParseURL(raw)
	if err != nil {
		return nil, err
	}
	if opt.TLSConfig != nil {
		opt.TLSConfig.MinVersion = tls.VersionTLS12
	}
	// Fail fast while Redis is down, so SMTP can answer 451 promptly; the
	// pool's dialer retries with go-redis's backoff on the next command.
	opt.DialTimeout = 2 * time.Second
	opt.ReadTimeout = 5 * time.Second
	opt.WriteTimeout = 5 * time.Second
	opt.MaxRetries = 2
	return opt, nil
}

// Open parses raw (see ParseURL), connects and runs Check.
func Open(ctx context.Context, raw string) (*redis.Client, error) {
	opt, err := ParseURL(raw)
	if err != nil {
		return nil, err
	}
	rdb := redis.NewClient(opt)
	if err := Check(ctx, rdb); err != nil {
		rdb.Close()
		return nil, err
	}
	return rdb, nil
}

// Check verifies that the server answers, is at least MinVersion, and
// fsyncs its AOF on every write (see the package comment). Each error
// names the setting to change.
func Check(ctx context.Context, rdb *redis.Client) error {
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("cannot reach redis: %w", err)
	}
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return fmt.Errorf("redis INFO server: %w", err)
	}
	v := infoField(info, "redis_version")
	if !atLeast(v, MinVersion) {
		return fmt.Errorf("redis %s is too old: need %s or later (XAUTOCLAIM)", v, MinVersion)
	}
	for _, s := range []struct{ name, want string }{{"appendonly", "yes"}, {"appendfsync", "always"}} {
		got, err := rdb.ConfigGet(ctx, s.name).Result()
		if err != nil {
			return fmt.Errorf("redis CONFIG GET %s (nhsrelay must read it to know writes are durable): %w", s.name, err)
		}
		if got[s.name] != s.want {
			return fmt.Errorf("%w: set \"%s %s\" in redis.conf (it is %q); nhsrelay sends 250 only for mail that is on disk",
				ErrNotDurable, s.name, s.want, got[s.name])
		}
	}
	return nil
}

// infoField returns the value of name in an INFO reply ("name:value" lines).
func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// atLeast compares dotted versions numerically; an unreadable v is false.
func atLeast(v, min string) bool {
	a, b := strings.Split(v, "."), strings.Split(min, ".")
	for i := range b {
		if i >= len(a) {
			return false
		}
		x, err := strconv.Atoi(a[i])
		if err != nil {
			return false
		}
		y, _ := strconv.Atoi(b[i])
		if x != y {
			return x > y
		}
	}
	return true
}

// Redacted returns raw with any password replaced by "xxxxx", for logs.
func Redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unreadable URL)"
	}
	return u.Redacted()
}

// NewClient is redis.NewClient, so that callers need not import go-redis
// for a client ParseURL's options describe.
func NewClient(opt *redis.Options) *redis.Client { return redis.NewClient(opt) }
