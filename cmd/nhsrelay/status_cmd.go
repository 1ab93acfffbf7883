package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"nhsrelay/internal/redisconn"
	"nhsrelay/relay/queue"
)

// runStatus prints, in cluster mode, the nodes that are alive, the depth
// of the shared queue and which node is delivering which message, read
// straight from Redis (any node's config will do).
func runStatus(args []string) error {
	path, err := parseConfigOnly("status", args)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	if cfg.RedisURL == "" {
		return errors.New("redis.url is not set: this is a single node; see `nhsrelay queue list` for its queue")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return printStatus(ctx, os.Stdout, cfg.RedisURL)
}

func printStatus(ctx context.Context, w io.Writer, url string) error {
	opt, err := redisconn.ParseURL(url)
	if err != nil {
		return fmt.Errorf("redis.url: %w", err)
	}
	rdb := redisconn.NewClient(opt)
	defer rdb.Close()
	nodes, err := redisconn.Nodes(ctx, rdb, redisPrefix)
	if err != nil {
		return err
	}
	st := queue.NewRedis(rdb, redisPrefix+"queue:")
	depth, err := st.Len(ctx)
	if err != nil {
		return err
	}
	leases, err := st.Leases(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "redis    %s\n", redisconn.Redacted(url))
	fmt.Fprintf(w, "nodes    %d\n", len(nodes))
	for _, n := range nodes {
		fmt.Fprintf(w, "  %-40s last seen %s\n", n.Name, n.Seen.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "queue    %d message(s)\n", depth)
	fmt.Fprintf(w, "leases   %d (messages being delivered now)\n", len(leases))
	ids := make([]string, 0, len(leases))
	for id := range leases {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Fprintf(w, "  %-28s %s\n", id, leases[id])
	}
	return nil
}
