package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"nhsrelay/directory"
)

// Options tunes a Store. The zero value is usable.
type Options struct {
	// WaitReplicas, if above zero, makes Apply wait (Redis WAIT) until that
	// many replicas have the batch, or fail after WaitTimeout.
	WaitReplicas int
	WaitTimeout  time.Duration // default 5s
}

// Store is a directory.Store in Redis.
type Store struct {
	rdb                          *redis.Client
	opt                          Options
	orgs, eps, accts, chals, rev string
}

var _ directory.Store = (*Store)(nil)

// New returns a Store keeping its keys under prefix ("nhsrelay:"). It does
// not own rdb: closing it is the caller's business.
func New(rdb *redis.Client, prefix string, opt Options) *Store {
	if opt.WaitTimeout <= 0 {
		opt.WaitTimeout = 5 * time.Second
	}
	p := prefix + "{directory}:"
	return &Store{rdb: rdb, opt: opt,
		orgs: p + "organisations", eps: p + "endpoints", accts: p + "accounts",
		chals: p + "challenges", rev: p + "revision"}
}

// Load implements directory.Store.
func (s *Store) Load(ctx context.Context) (directory.Snapshot, error) {
	var snap directory.Snapshot
	if err := ctx.Err(); err != nil {
		return snap, fmt.Errorf("redisstore: load: %w", err)
	}
	var orgs, eps, accts, chals *redis.MapStringStringCmd
	var rev *redis.StringCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		orgs, eps = p.HGetAll(ctx, s.orgs), p.HGetAll(ctx, s.eps)
		accts, chals = p.HGetAll(ctx, s.accts), p.HGetAll(ctx, s.chals)
		rev = p.Get(ctx, s.rev)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return snap, fmt.Errorf("redisstore: load: %w", err)
	}
	if snap.Revision, err = parseRev(rev); err != nil {
		return snap, fmt.Errorf("redisstore: load: %w", err)
	}
	if err := decodeAll(orgs, &snap.Organisations); err != nil {
		return directory.Snapshot{}, fmt.Errorf("redisstore: load: %w", err)
	}
	if err := decodeAll(eps, &snap.Endpoints); err != nil {
		return directory.Snapshot{}, fmt.Errorf("redisstore: load: %w", err)
	}
	if err := decodeAll(accts, &snap.Accounts); err != nil {
		return directory.Snapshot{}, fmt.Errorf("redisstore: load: %w", err)
	}
	if err := decodeAll(chals, &snap.Challenges); err != nil {
		return directory.Snapshot{}, fmt.Errorf("redisstore: load: %w", err)
	}
	return snap, nil
}

func decodeAll[T any](cmd *redis.MapStringStringCmd, out *[]T) error {
	m, err := cmd.Result()
	if err != nil {
		return err
	}
	for k, v := range m {
		var rec T
		if err := json.Unmarshal([]byte(v), &rec); err != nil {
			return fmt.Errorf("decode %s %s: %w", cmd.Args()[1], k, err)
		}
		*out = append(*out, rec)
	}
	return nil
}

func parseRev(cmd *redis.StringCmd) (uint64, error) {
	v, err := cmd.Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("revision %q: %w", v, err)
	}
	return n, nil
}

// Revision implements directory.Store.
func (s *Store) Revision(ctx context.Context) (uint64, error) {
	n, err := parseRev(s.rdb.Get(ctx, s.rev))
	if err != nil {
		return 0, fmt.Errorf("redisstore: revision: %w", err)
	}
	return n, nil
}

// Apply implements directory.Store: one MULTI/EXEC, then WAIT if asked.
func (s *Store) Apply(ctx context.Context, b directory.Batch) error {
	if err := b.CheckKeys(); err != nil {
		return fmt.Errorf("redisstore: apply: %w", err)
	}
	if b.Empty() {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisstore: apply: %w", err)
	}
	orgs, err := encodeAll(b.Organisations, func(o directory.Organisation) string { return o.ODS })
	if err != nil {
		return fmt.Errorf("redisstore: apply: %w", err)
	}
	eps, err := encodeAll(b.Endpoints, func(e directory.Endpoint) string { return e.ID })
	if err != nil {
		return fmt.Errorf("redisstore: apply: %w", err)
	}
	accts, err := encodeAll(b.Accounts, func(a directory.Account) string { return a.Username })
	if err != nil {
		return fmt.Errorf("redisstore: apply: %w", err)
	}
	chals, err := encodeAll(b.Challenges, func(c directory.Challenge) string { return c.EndpointID })
	if err != nil {
		return fmt.Errorf("redisstore: apply: %w", err)
	}
	// MULTI ... EXEC and WAIT go down one connection in one pipeline: WAIT
	// counts replicas that have this connection's writes.
	var exec, wait *redis.Cmd
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Do(ctx, "multi")
		for key, pairs := range map[string][]any{s.orgs: orgs, s.eps: eps, s.accts: accts, s.chals: chals} {
			if len(pairs) > 0 {
				p.Do(ctx, append([]any{"hset", key}, pairs...)...)
			}
		}
		if len(b.DeleteChallenges) > 0 {
			args := []any{"hdel", s.chals}
			for _, id := range b.DeleteChallenges {
				args = append(args, id)
			}
			p.Do(ctx, args...)
		}
		if len(b.DeleteAccounts) > 0 {
			args := []any{"hdel", s.accts}
			for _, u := range b.DeleteAccounts {
				args = append(args, u)
			}
			p.Do(ctx, args...)
		}
		p.Do(ctx, "incr", s.rev)
		exec = p.Do(ctx, "exec")
		if s.opt.WaitReplicas > 0 {
			wait = p.Do(ctx, "wait", s.opt.WaitReplicas, s.opt.WaitTimeout.Milliseconds())
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: apply: %w", err)
	}
	if res, err := exec.Slice(); err != nil || res == nil {
		return fmt.Errorf("redisstore: apply: transaction not executed: %v", err)
	}
	if wait != nil {
		n, err := wait.Int64()
		if err != nil {
			return fmt.Errorf("redisstore: apply: wait for replicas: %w", err)
		}
		if n < int64(s.opt.WaitReplicas) {
			return fmt.Errorf("redisstore: apply: written, but only %d of %d replicas confirmed within %s", n, s.opt.WaitReplicas, s.opt.WaitTimeout)
		}
	}
	return nil
}

// encodeAll returns field, JSON value pairs for HSET.
func encodeAll[T any](recs []T, key func(T) string) ([]any, error) {
	out := make([]any, 0, 2*len(recs))
	for _, r := range recs {
		v, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", key(r), err)
		}
		out = append(out, key(r), string(v))
	}
	return out, nil
}
