package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"nhsrelay/internal/redisconn"
	"nhsrelay/relay/queue"
	"nhsrelay/relay/queue/queuetest"
)

func TestStatusShowsNodesQueueAndLeases(t *testing.T) {
	t.Parallel()
	srv := queuetest.StartRedisServer(t)
	if err := redisconn.Announce(t.Context(), srv.Client, redisPrefix, "relay1/42", time.Minute); err != nil {
		t.Fatal(err)
	}
	st := queue.NewRedis(srv.Client, redisPrefix+"queue:")
	st.SetNode("relay1/42")
	for _, id := range []string{"M1", "M2"} {
		if err := st.Add(t.Context(), queue.Message{ID: id, From: "a@nhs.example"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Lease(t.Context(), "M2", time.Minute); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := printStatus(t.Context(), &out, srv.URL()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"nodes    1\n  relay1/42", "queue    2 message(s)", "leases   1", "M2", "relay1/42\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, out.String())
		}
	}
}
