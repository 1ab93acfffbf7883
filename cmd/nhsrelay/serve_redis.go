package main

import (
	"context"
	"os"
	"strconv"
	"time"

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
		st := queue.NewRedis(s.rdb, redisPrefix+"queue:")
		st.SetNode(nodeName())
		s.leases = st
		return st, nil
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

// Cluster timing: how often a node looks for mail other nodes accepted (or
// a crashed node left), and for directory changes other nodes made (one
// GET of the revision each time; a change reloads the directory).
const (
	rescanEvery           = 2 * time.Second
	directoryRefreshEvery = 500 * time.Millisecond
)

// openCluster adds, in cluster mode, the jobs that keep this node in step
// with the others: the queue rescan (relay.Rescan) and the directory
// refresh, so a suspension made on any node holds on every node within a
// second.
func (s *server) openCluster(ctx context.Context) error {
	if s.rdb == nil {
		return nil
	}
	name := nodeName()
	announce := func(ctx context.Context) error {
		return redisconn.Announce(ctx, s.rdb, redisPrefix, name, 3*rescanEvery)
	}
	if err := announce(ctx); err != nil {
		return err
	}
	s.jobs = append(s.jobs,
		every(rescanEvery, announce, s.component("cluster"), "announce this node"),
		every(rescanEvery, s.rel.Rescan, s.component("cluster"), "rescan the shared queue"),
		every(directoryRefreshEvery, s.dir.Refresh, s.component("cluster"), "refresh the directory"))
	return nil
}

// every runs fn each interval until ctx ends, logging failures (Redis
// down: the next tick tries again).
func every(interval time.Duration, fn func(context.Context) error, log interface{ Warn(string, ...any) }, what string) func(context.Context) {
	return func(ctx context.Context) {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := fn(ctx); err != nil && ctx.Err() == nil {
					log.Warn("cluster: "+what+" failed", "err", err)
				}
			}
		}
	}
}

// nodeName names this node in delivery leases and nhsrelay status: the
// machine's host name and the process ID.
func nodeName() string {
	h, err := os.Hostname()
	if err != nil {
		h = "unknown"
	}
	return h + "/" + strconv.Itoa(os.Getpid())
}
