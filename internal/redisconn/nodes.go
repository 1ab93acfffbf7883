package redisconn

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Node is a cluster member as its last announcement describes it.
type Node struct {
	Name string
	Seen time.Time // when it last announced itself
}

func nodeKey(prefix, name string) string { return prefix + "node:" + name }

// Announce records that the node name is alive, for ttl: a node that stops
// announcing (crashed, stopped) drops out of Nodes when ttl runs out.
func Announce(ctx context.Context, rdb *redis.Client, prefix, name string, ttl time.Duration) error {
	if err := rdb.Set(ctx, nodeKey(prefix, name), time.Now().UTC().Format(time.RFC3339), ttl).Err(); err != nil {
		return fmt.Errorf("announce node %s: %w", name, err)
	}
	return nil
}

// Nodes lists the nodes whose announcements have not expired, by name.
func Nodes(ctx context.Context, rdb *redis.Client, prefix string) ([]Node, error) {
	var out []Node
	iter := rdb.Scan(ctx, 0, nodeKey(prefix, "*"), 100).Iterator()
	for iter.Next(ctx) {
		v, err := rdb.Get(ctx, iter.Val()).Result()
		if err == redis.Nil {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list nodes: %w", err)
		}
		seen, _ := time.Parse(time.RFC3339, v)
		out = append(out, Node{Name: strings.TrimPrefix(iter.Val(), nodeKey(prefix, "")), Seen: seen})
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
