package redisconn_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"nhsrelay/directory/redisstore/redistest"
	"nhsrelay/internal/redisconn"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url     string
		wantErr string
		tls     bool
		pass    string
	}{
		{url: "redis://127.0.0.1:6379/0"},
		{url: "rediss://:s3cret@redis.nhs.example:6380/1", tls: true, pass: "s3cret"},
		{url: "unix:///run/redis/redis.sock"},
		{url: "http://127.0.0.1:6379", wantErr: "scheme"},
		{url: "redis://127.0.0.1:6379/notanumber", wantErr: "database"},
	} {
		opt, err := redisconn.ParseURL(tc.url)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseURL(%q) error = %v, want one mentioning %q", tc.url, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.url, err)
			continue
		}
		if (opt.TLSConfig != nil) != tc.tls {
			t.Errorf("ParseURL(%q) TLS = %v, want %v", tc.url, opt.TLSConfig != nil, tc.tls)
		}
		if tc.tls && opt.TLSConfig.MinVersion < 0x0303 {
			t.Errorf("ParseURL(%q) TLS MinVersion = %x, want TLS 1.2 or later", tc.url, opt.TLSConfig.MinVersion)
		}
		if opt.Password != tc.pass {
			t.Errorf("ParseURL(%q) password = %q, want %q", tc.url, opt.Password, tc.pass)
		}
	}
}

func TestCheck(t *testing.T) {
	srv := redistest.StartServer(t)
	rdb := srv.Client(t)
	if err := redisconn.Check(t.Context(), rdb); err != nil {
		t.Fatalf("Check on an appendfsync-always server: %v", err)
	}
	if err := rdb.ConfigSet(t.Context(), "appendfsync", "everysec").Err(); err != nil {
		t.Fatal(err)
	}
	err := redisconn.Check(t.Context(), rdb)
	if !errors.Is(err, redisconn.ErrNotDurable) || !strings.Contains(err.Error(), "appendfsync always") {
		t.Fatalf("Check with appendfsync everysec = %v, want ErrNotDurable naming appendfsync always", err)
	}
	if err := rdb.ConfigSet(t.Context(), "appendonly", "no").Err(); err != nil {
		t.Fatal(err)
	}
	if err := redisconn.Check(t.Context(), rdb); err == nil || !strings.Contains(err.Error(), "appendonly yes") {
		t.Fatalf("Check with appendonly no = %v, want an error naming appendonly yes", err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	_, err := redisconn.Open(t.Context(), "redis://127.0.0.1:1/0")
	if err == nil || !strings.Contains(err.Error(), "cannot reach redis") {
		t.Fatalf("Open(closed port) = %v, want cannot reach redis", err)
	}
}

func TestNodes(t *testing.T) {
	rdb := redistest.Start(t)
	for _, n := range []string{"b/2", "a/1"} {
		if err := redisconn.Announce(t.Context(), rdb, "p:", n, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := redisconn.Announce(t.Context(), rdb, "p:", "gone/3", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	var names []string
	for range 200 { // the short announcement expires
		nodes, err := redisconn.Nodes(t.Context(), rdb, "p:")
		if err != nil {
			t.Fatal(err)
		}
		names = names[:0]
		for _, n := range nodes {
			names = append(names, n.Name)
		}
		if len(names) == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if strings.Join(names, ",") != "a/1,b/2" {
		t.Fatalf("Nodes = %v, want [a/1 b/2]", names)
	}
}
