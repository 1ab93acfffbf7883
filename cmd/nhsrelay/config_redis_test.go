package main

import (
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"nhsrelay/directory/redisstore/redistest"
)

// check-config and start-up both ask the Redis named by redis.url, and
// refuse one that would acknowledge a write before it is on disk, naming
// the setting to change and the key.
func TestRedisURLChecked(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	cfg, err := loadConfig(writeConfigDir(t, mustSet(t, exampleConfig, "url", strconv.Quote(srv.URL()))))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RedisURL != srv.URL() {
		t.Fatalf("RedisURL = %q, want %q", cfg.RedisURL, srv.URL())
	}
	if err := checkRedis(t.Context(), cfg); err != nil {
		t.Fatalf("checkRedis on a durable redis: %v", err)
	}
	s := newServer(cfg, slog.New(slog.DiscardHandler), new(slog.LevelVar))
	if err := s.openRedis(t.Context()); err != nil || s.rdb == nil {
		t.Fatalf("openRedis on a durable redis: %v", err)
	}
	for _, c := range s.closers {
		c()
	}

	if err := srv.Client(t).ConfigSet(t.Context(), "appendfsync", "everysec").Err(); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"check-config": checkRedis(t.Context(), cfg),
		"serve":        newServer(cfg, slog.New(slog.DiscardHandler), new(slog.LevelVar)).openRedis(t.Context()),
	} {
		if err == nil || !strings.HasPrefix(err.Error(), "redis.url: ") || !strings.Contains(err.Error(), `"appendfsync always"`) {
			t.Errorf("%s with appendfsync everysec = %v, want a redis.url problem naming appendfsync always", name, err)
		}
	}
}

func TestRedisURLUnreachable(t *testing.T) {
	t.Parallel()
	addr := refusingAddr(t)
	cfg, err := loadConfig(writeConfigDir(t, mustSet(t, exampleConfig, "url", strconv.Quote("redis://:pw@"+addr+"/0"))))
	if err != nil {
		t.Fatal(err)
	}
	err = checkRedis(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "redis.url: cannot reach redis") || strings.Contains(err.Error(), "pw") {
		t.Fatalf("checkRedis(closed port) = %v, want redis.url: cannot reach redis, without the password", err)
	}
}

func mustSet(t *testing.T, text, key, value string) string {
	t.Helper()
	out, ok := setKey(text, key, value)
	if !ok {
		t.Fatalf("no key %s", key)
	}
	return out
}
