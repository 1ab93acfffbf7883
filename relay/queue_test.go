package relay_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"nhsrelay/directory"
	"nhsrelay/relay"
	"nhsrelay/relay/queue"
	"nhsrelay/relay/spool"
)

type failingReader struct{ n int }

var errClientGone = errors.New("client went away")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n > 0 {
		n := copy(p, strings.Repeat("x", min(len(p), f.n)))
		f.n -= n
		return n, nil
	}
	return 0, errClientGone
}

func TestSubmitReadErrorLeavesNothing(t *testing.T) {
	t.Parallel()
	e := start(t, newDir(), nil)
	_, err := e.r.Submit(t.Context(), relay.Envelope{From: sender, Recipients: []string{sender}}, &failingReader{n: 100 << 10})
	if !errors.Is(err, errClientGone) {
		t.Fatalf("Submit error = %v, want one wrapping the reader's error", err)
	}
	if msgs, _ := e.r.List(t.Context()); len(msgs) != 0 {
		t.Errorf("queue holds %d records after a failed Submit", len(msgs))
	}
	if ids, _ := relay.Spool(e.r).IDs(); len(ids) != 0 {
		t.Errorf("spool holds %v after a failed Submit", ids)
	}
}

func TestSubmitRefusesNoRecipients(t *testing.T) {
	t.Parallel()
	e := start(t, newDir(), nil)
	if _, err := e.r.Submit(t.Context(), relay.Envelope{From: sender}, strings.NewReader("x")); !errors.Is(err, relay.ErrNoRecipients) {
		t.Errorf("Submit error = %v, want ErrNoRecipients", err)
	}
}

// New after a crash: a spool file without a record (never acknowledged) is
// removed; a record without its spool file is failed with a DSN and an
// alert; a whole message is kept and delivered.
func TestRecoveryOnNew(t *testing.T) {
	t.Parallel()
	// Bodies in files of their own, and small ones in shared segments.
	for _, smallMax := range []int{0, spool.MaxSmall} {
		t.Run(fmt.Sprint(smallMax), func(t *testing.T) {
			t.Parallel()
			testRecoveryOnNew(t, smallMax)
		})
	}
}

func testRecoveryOnNew(t *testing.T, smallMax int) {
	tmp := t.TempDir()
	key := spoolKey(t)
	spoolDir := filepath.Join(tmp, "spool")
	storePath := filepath.Join(tmp, "queue.db")
	sp, err := spool.OpenWith(spoolDir, key, spool.Options{SmallMax: smallMax})
	if err != nil {
		t.Fatal(err)
	}
	orphan, lost, whole := relay.NewID(), relay.NewID(), relay.NewID()
	for _, id := range []string{orphan, whole} {
		if _, err := sp.Write(id, strings.NewReader(message("crash", id))); err != nil {
			t.Fatal(err)
		}
	}
	st, err := queue.OpenBolt(storePath)
	if err != nil {
		t.Fatal(err)
	}
	now := newClock().Now() // the relay's fake clock starts here
	for _, id := range []string{lost, whole} {
		m := queue.Message{ID: id, From: sender, Received: now, Recipients: []queue.Recipient{
			{Address: "ward7@hosted.nhs.example", State: queue.Queued, NextAttempt: now}}}
		if err := st.Add(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	d := newDir()
	d.add("ward7@hosted.nhs.example", directory.NextHop{Kind: directory.HopHosted})
	e := start(t, d, func(cfg *relay.Config) {
		cfg.SpoolDir, cfg.SpoolKey = spoolDir, key
		cfg.Store = openStore(t, storePath)
	})
	if ids, _ := relay.Spool(e.r).IDs(); slices.Contains(ids, orphan) {
		t.Errorf("spool file without a record survived New: %v", ids)
	}
	e.waitGone(t, lost) // failed at once, with a DSN: lost_test.go has the details
	if n := e.metric(t, "nhsrelay_relay_lost_total"); n != 1 {
		t.Errorf("nhsrelay_relay_lost_total = %v, want 1", n)
	}
	e.waitGone(t, whole)
	got := e.waitMailbox(t, "ward7@hosted.nhs.example", 1)
	if len(got) != 1 || !strings.Contains(string(got[0]), whole) {
		t.Errorf("mailbox = %d messages, want the whole one", len(got))
	}
}

func TestNewIDSortsAndIsSafe(t *testing.T) {
	t.Parallel()
	prev := ""
	seen := map[string]bool{}
	for range 1000 {
		id := relay.NewID()
		if seen[id] || id[:13] < prev {
			t.Fatalf("NewID = %q after %q: not unique, or its time part went back", id, prev)
		}
		if strings.ContainsFunc(id, func(r rune) bool { return !(r >= '0' && r <= '9' || r >= 'A' && r <= 'Z') }) {
			t.Fatalf("NewID = %q: not digits and capitals", id)
		}
		seen[id], prev = true, id[:13]
	}
}

func TestAdminAPI(t *testing.T) {
	t.Parallel()
	d := newDir()
	d.add("ward7@trust.nhs.example", directory.NextHop{Kind: directory.HopHost, Host: "127.0.0.1:1"}) // refused: stays queued
	e := start(t, d, func(cfg *relay.Config) { cfg.Logger = slog.New(slog.DiscardHandler) })
	id := e.submit(t, sender, []string{"ward7@trust.nhs.example"}, message("admin", "tok12"))
	e.waitAttempts(t, id, 1)
	srv := httptest.NewServer(e.r.AdminHandler())
	t.Cleanup(srv.Close)

	do := func(method, path string, wantCode int, out any) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), method, srv.URL+path, nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != wantCode {
			t.Fatalf("%s %s = %d %s, want %d", method, path, resp.StatusCode, body, wantCode)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s Content-Type = %q", method, path, ct)
		}
		if out != nil {
			if err := json.Unmarshal(body, out); err != nil {
				t.Fatalf("%s %s: %v: %s", method, path, err, body)
			}
		}
	}
	var list []queue.Message
	do("GET", "/v1/queue", 200, &list)
	if len(list) != 1 || list[0].ID != id {
		t.Fatalf("list = %+v", list)
	}
	var one queue.Message
	do("GET", "/v1/queue/"+id, 200, &one)
	if one.Recipients[0].LastCode == "" {
		t.Errorf("show = %+v, want the last error", one)
	}
	var e404 struct{ Error string }
	do("GET", "/v1/queue/NOSUCHID", 404, &e404)
	if e404.Error == "" {
		t.Errorf("404 without {\"error\": ...}")
	}
	do("POST", "/v1/queue/"+id+"/retry", 200, nil)
	e.waitAttempts(t, id, 2) // retried at once, without advancing the clock
	do("POST", "/v1/queue/NOSUCHID/retry", 404, nil)
	do("DELETE", "/v1/queue/"+id, 200, nil)
	do("DELETE", "/v1/queue/"+id, 404, nil)
	do("GET", "/v1/queue", 200, &list)
	if len(list) != 0 {
		t.Errorf("list after delete = %+v", list)
	}
}
