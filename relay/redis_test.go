package relay_test

import (
	"errors"
	"fmt"
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
	// The record goes first, then the body (Relay.remove).
	waitFor(t, "the body to be removed from redis after delivery", func() bool {
		_, err := relay.Spool(e.r).Open(id)
		return errors.Is(err, fs.ErrNotExist)
	})
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

// Two nodes share one Redis and one Maildir root: mail accepted on either
// is delivered exactly once, whichever node picks it up; a node that never
// runs (crashed after its 250s) has its messages delivered by the other.
func TestTwoNodesDeliverOnce(t *testing.T) {
	t.Parallel()
	srv := queuetest.StartRedisServer(t)
	d := newDir()
	d.add("ward7@hosted.nhs.example", directory.NextHop{Kind: directory.HopHosted})
	key, mail := spoolKey(t), t.TempDir()
	node := func(name string) func(*relay.Config) {
		return func(c *relay.Config) {
			c.SpoolKey, c.MaildirRoot = key, mail
			redisStores(t, srv, "n:")(c)
			st := c.Store.(*queue.RedisStore)
			st.SetNode(name)
			c.Leases = st
		}
	}
	dead := newEnv(t, d, node("dead")) // accepts, then never delivers
	a, b := start(t, d, node("a")), start(t, d, node("b"))
	const n = 12
	var ids []string
	for i := range n {
		e := []*env{a, b, dead}[i%3]
		ids = append(ids, e.submit(t, sender, []string{"ward7@hosted.nhs.example"}, message("referral", fmt.Sprintf("tok%02d", i))))
	}
	for range 2 { // both survivors learn of every message, so each is tried twice
		if err := a.r.Rescan(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := b.r.Rescan(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		a.waitGone(t, id)
	}
	got := a.waitMailbox(t, "ward7@hosted.nhs.example", n)
	seen := map[string]int{}
	for _, m := range got {
		for i := range n {
			if strings.Contains(string(m), fmt.Sprintf("tok%02d", i)) {
				seen[fmt.Sprintf("tok%02d", i)]++
			}
		}
	}
	if len(got) != n || len(seen) != n {
		t.Fatalf("mailbox holds %d messages (%d distinct), want %d, each once: %v", len(got), len(seen), n, seen)
	}
}
