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

// RedisServer is a redis-server run for one test.
type RedisServer struct {
	Client *redis.Client // connected to the server; survives Crash
	path   string        // the redis-server binary
	dir    string        // data folder, kept across Crash
	port   int
	stop   func()
}

// StartRedis runs a redis-server for this test and returns a client for it;
// see StartRedisServer.
func StartRedis(t testing.TB) *redis.Client {
	t.Helper()
	return StartRedisServer(t).Client
}

// StartRedisServer runs a redis-server for this test on a free loopback
// port, with its data in t.TempDir() and the AOF fsynced on every write
// (appendonly yes, appendfsync always: the setting RedisStore's durability
// rests on). The server is killed and the client closed when the test ends.
func StartRedisServer(t testing.TB) *RedisServer {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not installed (make test installs it): %v", err)
	}
	s := &RedisServer{path: path, dir: t.TempDir()}
	var lastErr error
	// The port is free when we close our listener; another process could
	// take it before redis binds, so try a few times.
	for range 5 {
		if s.port, err = freePort(); err != nil {
			t.Fatalf("find free port: %v", err)
		}
		if lastErr = s.start(); lastErr == nil {
			s.Client = redis.NewClient(&redis.Options{Addr: s.addr()})
			t.Cleanup(func() {
				s.Client.Close()
				s.stop()
			})
			return s
		}
	}
	t.Fatalf("start redis-server: %v", lastErr)
	return nil
}

// Crash kills the server with SIGKILL, as a power cut would stop it, and
// starts it again on the same port and data; the client reconnects.
func (s *RedisServer) Crash(t testing.TB) {
	t.Helper()
	s.stop()
	if err := s.start(); err != nil {
		t.Fatalf("restart redis-server: %v", err)
	}
}

func (s *RedisServer) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// start runs redis-server and waits until it answers PING.
func (s *RedisServer) start() error {
	cmd := exec.Command(s.path,
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--protected-mode", "yes",
		"--save", "", "--appendonly", "yes", "--appendfsync", "always",
		"--dir", s.dir, "--logfile", "")
	out := &limitedBuffer{max: 8 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s.stop = func() {
		cmd.Process.Kill()
		<-exited
	}
	probe := redis.NewClient(&redis.Options{Addr: s.addr(), MaxRetries: -1})
	defer probe.Close()
	for range 100 { // up to ~5 s
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := probe.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server exited (%v): %s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	s.stop()
	return fmt.Errorf("redis-server on port %d did not answer PING: %s", s.port, out.String())
}

// URL is the server's address as nhsrelay's redis.url takes it.
func (s *RedisServer) URL() string { return "redis://" + s.addr() + "/0" }

// Stop kills the server and leaves it down until Start.
func (s *RedisServer) Stop(t testing.TB) {
	t.Helper()
	s.stop()
	s.stop = func() {}
}

// Start runs the server again on the same port and data after Stop.
func (s *RedisServer) Start(t testing.TB) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatalf("restart redis-server: %v", err)
	}
}
