package main

import (
	"context"
	"time"

	"nhsrelay/internal/redisconn"
)

// fileRedis is the [redis] table: set url and every node sharing it runs
// as one cluster (README "Deploying a cluster").
type fileRedis struct {
	URL string `toml:"url"`
}

// redisCheckTimeout bounds how long check-config and start-up wait for
// Redis to answer the checks.
const redisCheckTimeout = 5 * time.Second

// redis checks the URL's form; checkRedis (check-config and serve) then
// asks the server itself.
func (v *validator) redis(c *config, r fileRedis) {
	if r.URL == "" {
		return
	}
	if _, err := redisconn.ParseURL(r.URL); err != nil {
		v.addf("redis.url", "%v", err)
		return
	}
	c.RedisURL = r.URL
}

// checkRedis connects to c's Redis, if any, and runs redisconn.Check:
// reachable, recent enough, and fsyncing every write. The error names the
// key.
func checkRedis(ctx context.Context, c *config) error {
	if c.RedisURL == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, redisCheckTimeout)
	defer cancel()
	rdb, err := redisconn.Open(ctx, c.RedisURL)
	if err != nil {
		return &keyError{Key: "redis.url", Problem: err.Error()}
	}
	return rdb.Close()
}
