package spool

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// The crash test re-runs this test binary as a writer process (TestMain
// sees crashDirEnv), lets it acknowledge messages, kills it with SIGKILL
// mid-load, and checks the spool as a restarted relay would.
const (
	crashDirEnv = "NHSRELAY_SPOOL_CRASH_DIR"
	crashKeyEnv = "NHSRELAY_SPOOL_CRASH_KEY"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashWriter(dir, os.Getenv(crashKeyEnv))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crashBody is the body for id: big enough to span chunks for most IDs,
// small enough for a segment for every seventh.
func crashBody(id string, i int) []byte {
	return bytes.Repeat([]byte(id+"\r\n"), 1+(i%7)*9000)
}

// crashWriter writes messages from 4 goroutines until killed (or a bound),
// printing "ok ID" only after Write has returned.
func crashWriter(dir, hexKey string) {
	key, err := hex.DecodeString(hexKey)
	if err != nil {
		fmt.Println("bad key:", err)
		return
	}
	// As the relay opens it: bodies of one chunk or less (every seventh
	// here) go to shared segments, the others to files of their own.
	s, err := OpenWith(dir, key, Options{SmallMax: MaxSmall})
	if err != nil {
		fmt.Println("open:", err)
		return
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 5000 {
				id := fmt.Sprintf("w%d-%d", w, i)
				if _, err := s.Write(id, bytes.NewReader(crashBody(id, i))); err != nil {
					fmt.Println("write:", err)
					return
				}
				mu.Lock()
				fmt.Println("ok", id)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func TestKill9KeepsAcknowledged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := testKey(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashKeyEnv+"="+hex.EncodeToString(key))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]int{}
	sc := bufio.NewScanner(out)
	for len(acked) < 200 && sc.Scan() {
		id, ok := strings.CutPrefix(sc.Text(), "ok ")
		if !ok {
			t.Fatalf("writer: %s", sc.Text())
		}
		var w, i int
		fmt.Sscanf(id, "w%d-%d", &w, &i)
		acked[id] = i
	}
	cmd.Process.Kill() // SIGKILL: no deferred cleanup runs in the writer
	cmd.Wait()
	if len(acked) < 200 {
		t.Fatalf("writer acknowledged only %d messages before it stopped", len(acked))
	}

	s := mustOpen(t, dir, key) // removes what the kill left half-done
	ids, err := s.IDs()
	if err != nil {
		t.Fatal(err)
	}
	for id, i := range acked {
		got, err := readAll(s, id)
		if err != nil || !bytes.Equal(got, crashBody(id, i)) {
			t.Fatalf("acknowledged %s after kill -9: %d bytes, %v", id, len(got), err)
		}
	}
	// Unacknowledged but complete messages may exist; each must read whole.
	for _, id := range ids {
		if _, err := readAll(s, id); err != nil {
			t.Fatalf("%s listed by IDs but unreadable: %v", id, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), tmpSuffix) {
			t.Fatalf("temp file %s survived Open", e.Name())
		}
	}
}
