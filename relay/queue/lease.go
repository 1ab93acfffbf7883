package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrLeased means another node holds the message's lease: it is
// delivering the message now.
var ErrLeased = errors.New("queue: message is being delivered by another node")

// Leaser grants one node at a time the right to attempt a message, for
// ttl at most (cluster mode: a node that dies mid-attempt loses its leases
// when they expire, and the survivors take its messages over). The
// embedded, single-node queue needs none.
type Leaser interface {
	// Lease takes id's lease for ttl, or returns an error wrapping
	// ErrLeased. release gives it back early; it is safe to call after
	// the lease expired and another node took it (it then does nothing).
	Lease(ctx context.Context, id string, ttl time.Duration) (release func(), err error)
}

var _ Leaser = (*RedisStore)(nil)

func (s *RedisStore) leaseKey(id string) string { return s.prefix + "lease:" + id }

// releaseScript deletes a lease only if it is still ours.
var releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0`)

// Lease implements Leaser with SET NX PX: the key holds the node's name
// and a random token, and expires by itself.
func (s *RedisStore) Lease(ctx context.Context, id string, ttl time.Duration) (func(), error) {
	var b [12]byte
	rand.Read(b[:])
	token := s.node + " " + hex.EncodeToString(b[:])
	ok, err := s.rdb.SetNX(ctx, s.leaseKey(id), token, ttl).Result()
	if err != nil {
		return nil, fmt.Errorf("queue: lease %s: %w", id, err)
	}
	if !ok {
		return nil, fmt.Errorf("queue: lease %s: %w", id, ErrLeased)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		releaseScript.Run(ctx, s.rdb, []string{s.leaseKey(id)}, token) // an error leaves it to expire
	}, nil
}

// SetNode names this node in the leases it takes (nhsrelay status shows
// who is delivering what); the default is "node".
func (s *RedisStore) SetNode(name string) { s.node = name }

// Leases returns, by message ID, the node holding each lease now.
func (s *RedisStore) Leases(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	iter := s.rdb.Scan(ctx, 0, s.leaseKey("*"), 500).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		v, err := s.rdb.Get(ctx, k).Result()
		if errors.Is(err, redis.Nil) {
			continue // expired meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("queue: leases: %w", err)
		}
		node, _, _ := strings.Cut(v, " ")
		out[k[len(s.leaseKey("")):]] = node
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("queue: leases: %w", err)
	}
	return out, nil
}
