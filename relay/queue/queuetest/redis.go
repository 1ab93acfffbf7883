package queuetest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// StartRedis runs a redis-server for this test on a free loopback port,
// with its data in t.TempDir() and the AOF fsynced on every write (the
// setting RedisStore's durability rests on), and returns a client for it.
// The server is killed and the client closed when the test ends.
func StartRedis(t testing.TB) *redis.Client {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not installed (make test installs it): %v", err)
	}
	var lastErr error
	// The port is free when we close our listener; another process could
	// take it before redis binds, so try a few times.
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("find free port: %v", err)
		}
		rdb, err := startRedis(t, path, port)
		if err == nil {
			return rdb
		}
		lastErr = err
	}
	t.Fatalf("start redis-server: %v", lastErr)
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func startRedis(t testing.TB, path string, port int) (*redis.Client, error) {
	dir := t.TempDir()
	cmd := exec.Command(path,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
		"--save", "", "--appendonly", "yes", "--appendfsync", "always",
		"--dir", dir, "--logfile", "")
	out := &limitedBuffer{max: 8 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Kill()
		<-exited
	}
	rdb := redis.NewClient(&redis.Options{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))})
	for range 100 { // up to ~5 s
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			t.Cleanup(func() {
				rdb.Close()
				stop()
			})
			return rdb, nil
		}
		select {
		case err := <-exited:
			rdb.Close()
			return nil, fmt.Errorf("redis-server exited (%v): %s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	rdb.Close()
	stop()
	return nil, fmt.Errorf("redis-server on port %d did not answer PING: %s", port, out.String())
}
