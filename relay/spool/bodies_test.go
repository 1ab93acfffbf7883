package spool_test

import (
	"bytes"
	"io"
	"path/filepath"
	"slices"
	"testing"

	"nhsrelay/relay/queue/queuetest"
	"nhsrelay/relay/spool"
	"nhsrelay/relay/spool/spooltest"
)

func TestContractFolder(t *testing.T) {
	t.Parallel()
	for _, small := range []int{0, spool.MaxSmall} { // a file per body; small bodies in segments
		spooltest.Run(t, func(t *testing.T) func([]byte) spool.Bodies {
			dir := filepath.Join(t.TempDir(), "spool")
			return func(key []byte) spool.Bodies {
				sp, err := spool.OpenWith(dir, key, spool.Options{SmallMax: small})
				if err != nil {
					t.Fatal(err)
				}
				return sp
			}
		})
	}
}

func TestContractRedis(t *testing.T) {
	t.Parallel()
	rdb := queuetest.StartRedis(t)
	spooltest.Run(t, func(t *testing.T) func([]byte) spool.Bodies {
		prefix := "test:" + t.Name() + ":" // a fresh prefix: an empty store
		return func(key []byte) spool.Bodies {
			b, err := spool.NewRedis(rdb, prefix, key, -1)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	})
}

// A body Write acknowledged survives redis-server's SIGKILL (the AOF is
// fsynced before each reply); and IDs leaves out bodies younger than the
// orphan age, which may be another node's Submit in flight.
func TestRedisBodiesSurviveKill(t *testing.T) {
	t.Parallel()
	srv := queuetest.StartRedisServer(t)
	key := bytes.Repeat([]byte{7}, spool.KeySize)
	b, err := spool.NewRedis(srv.Client, "n:", key, 0)
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("clinical letter "), 10000)
	if _, err := b.Write("M1", bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if ids, err := b.IDs(); err != nil || len(ids) != 0 {
		t.Fatalf("IDs right after Write = %v, %v; want none (younger than the orphan age)", ids, err)
	}
	srv.Crash(t)
	r, err := b.Open("M1")
	if err != nil {
		t.Fatalf("after kill -9: %v", err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("after kill -9: read %d bytes, %v; want the body", len(got), err)
	}
	raw, err := srv.Client.Get(t.Context(), "n:body:M1").Bytes()
	if err != nil || bytes.Contains(raw, []byte("clinical letter")) {
		t.Fatalf("the body in redis is not sealed (%v)", err)
	}
	old, err := spool.NewRedis(srv.Client, "n:", key, -1)
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := old.IDs(); err != nil || !slices.Equal(ids, []string{"M1"}) {
		t.Fatalf("IDs with no orphan age = %v, %v; want [M1]", ids, err)
	}
}
