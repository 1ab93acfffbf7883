package redistest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a running redis-server.
type Server struct {
	Socket string // path of its Unix socket
}

// URL returns the server's address as a go-redis URL ("unix:///...").
func (s *Server) URL() string { return "unix://" + s.Socket }

// Client returns a client for the server, closed by t.Cleanup.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: s.Socket})
	t.Cleanup(func() { c.Close() })
	return c
}

// Start runs a redis-server until t ends and returns a client for it.
func Start(t testing.TB) *redis.Client {
	t.Helper()
	return StartServer(t).Client(t)
}

// StartServer runs a redis-server until t ends.
func StartServer(t testing.TB) *Server {
	t.Helper()
	// A Unix socket path must fit in sun_path (108 bytes on Linux);
	// t.TempDir() paths carry the test name and can be longer.
	dir, err := os.MkdirTemp("", "redistest")
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	sock := filepath.Join(dir, "redis.sock")
	logf := filepath.Join(dir, "redis.log")
	cmd := exec.Command("redis-server",
		"--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
		"--dir", dir, "--appendonly", "yes", "--appendfsync", "always", "--save", "",
		"--daemonize", "no", "--logfile", logf)
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("redistest: start redis-server: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		os.RemoveAll(dir)
	})

	c := redis.NewClient(&redis.Options{Network: "unix", Addr: sock, MaxRetries: -1})
	defer c.Close()
	for range 400 { // up to ~10s
		select {
		case err := <-exited:
			logText, _ := os.ReadFile(logf)
			t.Fatalf("redistest: redis-server exited: %v\n%s", err, logText)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return &Server{Socket: sock}
		}
		time.Sleep(25 * time.Millisecond)
	}
	logText, _ := os.ReadFile(logf)
	t.Fatalf("redistest: redis-server at %s did not answer PING\n%s", sock, logText)
	return nil
}
