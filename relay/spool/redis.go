package spool

import (
	"bytes"
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/chacha20poly1305"
)

// DefaultOrphanAge is how old a body in Redis must be before recovery may
// treat it as never acknowledged: far longer than any Submit takes
// between writing the body and committing its queue record.
const DefaultOrphanAge = 10 * time.Minute

// redisTimeout bounds each Redis call: Bodies has no context (the spool
// folder needs none), and a Write must fail, so SMTP answers 451, rather
// than hang while Redis is down.
const redisTimeout = 10 * time.Second

// Redis keeps sealed bodies in Redis for a cluster: the same format and
// key as the spool folder, one string per body at prefix+"body:"+ID, and
// the sorted set prefix+"bodies" of IDs scored by when (Redis's clock, in
// milliseconds) each was written.
//
// Durability is Redis's: with "appendonly yes" and "appendfsync always"
// (redisconn.Check refuses a server without them) Redis fsyncs its AOF
// before it replies, so Write returns only once the body is on disk.
type Redis struct {
	rdb       *redis.Client
	body, idx string
	aead      cipher.AEAD
	kid       []byte
	orphanAge time.Duration
}

// NewRedis returns the body store under prefix ("nhsrelay:") in rdb, which
// it does not own. key is the spool key (KeySize bytes); orphanAge (see
// Bodies.IDs) 0 means DefaultOrphanAge, negative means none (tests).
func NewRedis(rdb *redis.Client, prefix string, key []byte, orphanAge time.Duration) (*Redis, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("spool: redis: key is %d bytes, want %d", len(key), KeySize)
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("spool: redis: %w", err)
	}
	if orphanAge == 0 {
		orphanAge = DefaultOrphanAge
	}
	return &Redis{rdb: rdb, body: prefix + "body:", idx: prefix + "bodies",
		aead: aead, kid: keyID(key), orphanAge: max(orphanAge, 0)}, nil
}

func ctxTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), redisTimeout)
}

// redisWrite stores the body only if the ID is free, and indexes it by
// Redis's own clock, in one atomic step (one AOF fsync).
var redisWrite = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 1 then return 0 end
local t = redis.call("TIME")
redis.call("SET", KEYS[1], ARGV[1])
redis.call("ZADD", KEYS[2], t[1] * 1000 + math.floor(t[2] / 1000), ARGV[2])
return 1`)

// Write implements Bodies.
func (s *Redis) Write(id string, body io.Reader) (int64, error) {
	if err := validID(id); err != nil {
		return 0, err
	}
	header, err := newHeader(s.kid)
	if err != nil {
		return 0, err
	}
	var sealed bytes.Buffer
	n, err := seal(&sealed, body, s.aead, header, append(header, id...), make([]byte, sealedChunk))
	if err != nil {
		return n, fmt.Errorf("spool: write %s: %w", id, err)
	}
	ctx, cancel := ctxTimeout()
	defer cancel()
	added, err := redisWrite.Run(ctx, s.rdb, []string{s.body + id, s.idx}, sealed.Bytes(), id).Int()
	if err != nil {
		return n, fmt.Errorf("spool: write %s to redis: %w", id, err)
	}
	if added == 0 {
		return 0, fmt.Errorf("spool: write %s: %w", id, ErrExists)
	}
	return n, nil
}

// Open implements Bodies.
func (s *Redis) Open(id string) (io.ReadCloser, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	ctx, cancel := ctxTimeout()
	defer cancel()
	b, err := s.rdb.Get(ctx, s.body+id).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("spool: open %s: %w", id, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("spool: open %s from redis: %w", id, err)
	}
	r := bytes.NewReader(b)
	o, err := newOpener(r, io.NopCloser(r), s.aead, s.kid, id)
	if err != nil {
		return nil, fmt.Errorf("spool: open %s: %w", id, err)
	}
	return o, nil
}

// Remove implements Bodies.
func (s *Redis) Remove(id string) error {
	if err := validID(id); err != nil {
		return err
	}
	ctx, cancel := ctxTimeout()
	defer cancel()
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.body+id)
		p.ZRem(ctx, s.idx, id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("spool: remove %s from redis: %w", id, err)
	}
	return nil
}

// redisIDs lists the IDs written at least ARGV[1] milliseconds ago by
// Redis's clock, so that node clocks do not matter.
var redisIDs = redis.NewScript(`
local t = redis.call("TIME")
local cutoff = t[1] * 1000 + math.floor(t[2] / 1000) - tonumber(ARGV[1])
return redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", cutoff)`)

// IDs implements Bodies: the bodies older than the orphan age.
func (s *Redis) IDs() ([]string, error) {
	ctx, cancel := ctxTimeout()
	defer cancel()
	ids, err := redisIDs.Run(ctx, s.rdb, []string{s.idx}, s.orphanAge.Milliseconds()).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("spool: list redis: %w", err)
	}
	slices.Sort(ids) // ZRANGEBYSCORE orders by time
	return ids, nil
}

// Damaged implements Bodies: Redis keeps each body whole or not at all;
// tampering shows at Open, as ErrCorrupt.
func (s *Redis) Damaged() []Damage { return nil }
