package main

import (
	"context"

	"nhsrelay/directory"
	"nhsrelay/directory/boltstore"
	"nhsrelay/directory/redisstore"
	"nhsrelay/internal/redisconn"
	"nhsrelay/relay/queue"
	"nhsrelay/relay/spool"
)

// redisPrefix starts every key nhsrelay keeps in Redis, so one Redis can
// hold other data (though a dedicated one is advised).
const redisPrefix = "nhsrelay:"

// openRedis connects to the shared Redis when redis.url is set and checks
// it as check-config does (reachable, version, AOF fsync on every write):
// a node that cannot keep what it acknowledges does not start.
func (s *server) openRedis(ctx context.Context) error {
	if s.cfg.RedisURL == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, redisCheckTimeout)
	defer cancel()
	rdb, err := redisconn.Open(ctx, s.cfg.RedisURL)
	if err != nil {
		return &keyError{Key: "redis.url", Problem: err.Error()}
	}
	s.rdb = rdb
	s.closers = append(s.closers, rdb.Close)
	s.logger.Info("cluster mode: stores in redis", "redis", redisconn.Redacted(s.cfg.RedisURL))
	return nil
}

// directoryStore is the Redis directory store in cluster mode, else the
// embedded one in data_dir.
func (s *server) directoryStore() (directory.Store, error) {
	if s.rdb != nil {
		return redisstore.New(s.rdb, redisPrefix, redisstore.Options{}), nil
	}
	st, err := boltstore.Open(s.cfg.DirectoryDB())
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, st.Close)
	return st, nil
}

// queueStore is the Redis queue store in cluster mode, else the embedded
// one in data_dir.
func (s *server) queueStore() (queue.Store, error) {
	if s.rdb != nil {
		return queue.NewRedis(s.rdb, redisPrefix+"queue:"), nil
	}
	st, err := queue.OpenBolt(s.cfg.QueueDB())
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, st.Close)
	return st, nil
}

// bodyStore is the Redis body store in cluster mode (sealed with the spool
// key, durable per redisconn's check), else nil: the relay's spool folder.
func (s *server) bodyStore(key []byte) (spool.Bodies, error) {
	if s.rdb == nil {
		return nil, nil
	}
	return spool.NewRedis(s.rdb, redisPrefix, key, 0)
}
