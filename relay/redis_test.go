package relay_test

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"nhsrelay/directory"
	"nhsrelay/relay"
	"nhsrelay/relay/queue"
	"nhsrelay/relay/queue/queuetest"
	"nhsrelay/relay/spool"
)

// redisStores puts the relay's bodies and queue in one redis-server, as a
// cluster node's serve does.
func redisStores(t testing.TB, srv *queuetest.RedisServer, prefix string) func(*relay.Config) {
	return func(c *relay.Config) {
		b, err := spool.NewRedis(srv.Client, prefix, c.SpoolKey, 0)
		if err != nil {
			t.Fatal(err)
		}
		c.Bodies, c.Store, c.SpoolDir = b, queue.NewRedis(srv.Client, prefix+"queue:"), ""
	}
}

// With bodies and queue in Redis, a message is delivered as from the
// spool folder, and its body is removed from Redis afterwards.
func TestRedisBodiesDelivery(t *testing.T) {
	t.Parallel()
	srv := queuetest.StartRedisServer(t)
	d := newDir()
	d.add("ward7@hosted.nhs.example", directory.NextHop{Kind: directory.HopHosted})
	e := start(t, d, redisStores(t, srv, "n:"))
	id := e.submit(t, sender, []string{"ward7@hosted.nhs.example"}, message("referral", "tokR"))
	e.waitGone(t, id)
	got := e.waitMailbox(t, "ward7@hosted.nhs.example", 1)
	if !strings.HasSuffix(string(got[0]), message("referral", "tokR")) {
		t.Errorf("delivered message is not the submitted one:\n%s", got[0])
	}
	if _, err := relay.Spool(e.r).Open(id); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("body still in redis after delivery: %v", err)
	}
}

// A node starting while another's message is young (its body not yet
// listed by IDs) keeps the message: recovery only drops a record whose
// body is really gone. And the queued message survives redis-server's
// kill -9 and is delivered by the next node.
func TestRedisRecoveryKeepsYoungBodies(t *testing.T) {
	t.Parallel()
	srv := queuetest.StartRedisServer(t)
	d := newDir()
	d.add("ward7@hosted.nhs.example", directory.NextHop{Kind: directory.HopHosted})
	key := spoolKey(t)
	withKey := func(c *relay.Config) { c.SpoolKey = key; redisStores(t, srv, "n:")(c) }
	first := newEnv(t, d, withKey) // not running: the message stays queued
	id := first.submit(t, sender, []string{"ward7@hosted.nhs.example"}, message("referral", "tokY"))
	srv.Crash(t)
	second := start(t, d, withKey)
	second.waitGone(t, id)
	second.waitMailbox(t, "ward7@hosted.nhs.example", 1)
}
