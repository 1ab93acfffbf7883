package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// maxUpdateRetries bounds Update's optimistic retries when other writers
// keep changing the same message.
const maxUpdateRetries = 100

// ErrNotDurable means the Redis server would acknowledge writes before they
// are on disk (see CheckDurable).
var ErrNotDurable = errors.New("queue: redis does not fsync every write (want appendonly yes, appendfsync always)")

// RedisStore is the cluster Store. Each message is a JSON string at
// prefix+"msg:"+ID, and the sorted set prefix+"ids" (all scores 0, so
// ordered by member) lists the IDs.
//
// Durability: a write is acknowledged by Redis once it is in the AOF, and
// with "appendonly yes" and "appendfsync always" Redis fsyncs the AOF before
// it replies, so a change is on stable storage when a method returns.
// CheckDurable verifies that setting; nhsrelay refuses to start without it.
// (Replication alone, checked with WAIT, survives a node's loss but not a
// power cut of the whole cluster, so it is not enough on its own.)
type RedisStore struct {
	rdb    *redis.Client
	prefix string
	node   string // named in leases (lease.go)
}

var _ Store = (*RedisStore)(nil)

// NewRedis returns a Store keeping its records under keys starting with
// prefix ("nhsrelay:queue:"). rdb is shared: Close does not close it.
func NewRedis(rdb *redis.Client, prefix string) *RedisStore {
	return &RedisStore{rdb: rdb, prefix: prefix, node: "node"}
}

func (s *RedisStore) key(id string) string { return s.prefix + "msg:" + id }
func (s *RedisStore) index() string        { return s.prefix + "ids" }

// CheckDurable returns an error wrapping ErrNotDurable unless the server
// fsyncs its AOF on every write.
func (s *RedisStore) CheckDurable(ctx context.Context) error {
	for name, want := range map[string]string{"appendonly": "yes", "appendfsync": "always"} {
		got, err := s.rdb.ConfigGet(ctx, name).Result()
		if err != nil {
			return fmt.Errorf("queue: redis config get %s: %w", name, err)
		}
		if got[name] != want {
			return fmt.Errorf("%w: %s is %q", ErrNotDurable, name, got[name])
		}
	}
	return nil
}

// addScript sets the record and indexes it only if the ID is free, in one
// atomic step.
var addScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 1 then return 0 end
redis.call("SET", KEYS[1], ARGV[1])
redis.call("ZADD", KEYS[2], 0, ARGV[2])
return 1`)

// Add stores m; ErrExists if its ID is taken.
func (s *RedisStore) Add(ctx context.Context, m Message) error {
	if m.ID == "" {
		return errors.New("queue: add: empty message ID")
	}
	v, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("queue: add %s: %w", m.ID, err)
	}
	added, err := addScript.Run(ctx, s.rdb, []string{s.key(m.ID), s.index()}, v, m.ID).Int()
	if err != nil {
		return fmt.Errorf("queue: add %s: %w", m.ID, err)
	}
	if added == 0 {
		return fmt.Errorf("queue: add %s: %w", m.ID, ErrExists)
	}
	return nil
}

// Get returns the message with id, or an error wrapping ErrNotFound.
func (s *RedisStore) Get(ctx context.Context, id string) (Message, error) {
	v, err := s.rdb.Get(ctx, s.key(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Message{}, fmt.Errorf("queue: get %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Message{}, fmt.Errorf("queue: get %s: %w", id, err)
	}
	var m Message
	if err := json.Unmarshal(v, &m); err != nil {
		return Message{}, fmt.Errorf("queue: get %s: %w", id, err)
	}
	return m, nil
}

// casScript writes ARGV[2] only if the record still holds ARGV[1]
// (compare and set): 1 written, 0 changed meanwhile, -1 gone.
var casScript = redis.NewScript(`
local cur = redis.call("GET", KEYS[1])
if not cur then return -1 end
if cur ~= ARGV[1] then return 0 end
redis.call("SET", KEYS[1], ARGV[2])
return 1`)

// Update reads id's message, lets fn change it and writes it back with a
// compare-and-set script, so the write happens only if nobody changed the
// record meanwhile; otherwise it reads again and reruns fn on the fresh
// copy. Two round trips (GET, script) where WATCH/MULTI/EXEC took five.
// fn must therefore have no effects outside *Message. If fn returns an
// error nothing is written and Update returns it wrapped. fn may not
// change the ID.
func (s *RedisStore) Update(ctx context.Context, id string, fn func(*Message) error) error {
	key := s.key(id)
	for range maxUpdateRetries {
		v, err := s.rdb.Get(ctx, key).Bytes()
		if errors.Is(err, redis.Nil) {
			return fmt.Errorf("queue: update %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("queue: update %s: %w", id, err)
		}
		var m Message
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("queue: update %s: %w", id, err)
		}
		if err := fn(&m); err != nil {
			return fmt.Errorf("queue: update %s: %w", id, err)
		}
		if m.ID != id {
			return fmt.Errorf("queue: update %s: fn changed the ID to %q", id, m.ID)
		}
		nv, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("queue: update %s: %w", id, err)
		}
		res, err := casScript.Run(ctx, s.rdb, []string{key}, v, nv).Int()
		if err != nil {
			return fmt.Errorf("queue: update %s: %w", id, err)
		}
		switch res {
		case 1:
			return nil
		case -1:
			return fmt.Errorf("queue: update %s: %w", id, ErrNotFound)
		}
		// 0: another writer won the race: read again
	}
	return fmt.Errorf("queue: update %s: still contended after %d attempts", id, maxUpdateRetries)
}

// Delete removes id's record; a missing ID is not an error.
func (s *RedisStore) Delete(ctx context.Context, id string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.key(id))
		p.ZRem(ctx, s.index(), id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("queue: delete %s: %w", id, err)
	}
	return nil
}

// List returns every message, ordered by ID (bytewise, as Redis orders
// members of equal score). Records deleted while List runs are left out.
func (s *RedisStore) List(ctx context.Context) ([]Message, error) {
	ids, err := s.rdb.ZRange(ctx, s.index(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("queue: list: %w", err)
	}
	var out []Message
	const page = 500
	for len(ids) > 0 {
		n := min(page, len(ids))
		keys := make([]string, n)
		for i, id := range ids[:n] {
			keys[i] = s.key(id)
		}
		vals, err := s.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, fmt.Errorf("queue: list: %w", err)
		}
		for i, v := range vals {
			str, ok := v.(string)
			if !ok {
				continue // deleted meanwhile
			}
			var m Message
			if err := json.Unmarshal([]byte(str), &m); err != nil {
				return nil, fmt.Errorf("queue: list: record %q: %w", ids[i], err)
			}
			out = append(out, m)
		}
		ids = ids[n:]
	}
	return out, nil
}

// Close does nothing: the client belongs to the caller.
func (s *RedisStore) Close() error { return nil }

// Len is how many messages are queued (one ZCARD).
func (s *RedisStore) Len(ctx context.Context) (int64, error) {
	n, err := s.rdb.ZCard(ctx, s.index()).Result()
	if err != nil {
		return 0, fmt.Errorf("queue: len: %w", err)
	}
	return n, nil
}
