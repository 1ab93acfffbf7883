package crashtest

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// The load: each wave is `nSenders` smtp-source processes of `perSender`
// messages; the relay is killed once `killAfter` messages of the wave have
// been acknowledged, well before the wave could finish.
const (
	nSenders  = 20
	perSender = 60
	killAfter = 150
	// hopConcurrency is relay.hop_concurrency for the test: SMTP sessions
	// to the sink at once.
	hopConcurrency = 5
	// relayConcurrency is relay.Config.Concurrency's default (cmd does not
	// change it): delivery attempts in flight at once. An attempt holds its
	// hop session only until the remote 250, then commits the result, so
	// this, not hopConcurrency, bounds the deliveries one kill can leave
	// uncommitted, and so the duplicates it can cause at a remote hop.
	relayConcurrency = 100
)

// TestKill9 is issue 3's crash test: 20 concurrent smtp-source senders,
// kill -9 of nhsrelay in the middle of the load, restart; twice, the second
// time while the first crash's queue is still being delivered. Every
// message that got a 250 must arrive; at a hosted Maildir exactly once,
// at a remote SMTP sink at least once with duplicates bounded by the
// deliveries in flight at the kills.
func TestKill9(t *testing.T) {
	t.Parallel()
	bin := buildRelay(t)
	t.Run("RemoteSMTP", func(t *testing.T) {
		t.Parallel()
		runCrash(t, bin, false)
	})
	t.Run("HostedMaildir", func(t *testing.T) {
		t.Parallel()
		runCrash(t, bin, true)
	})
}

func runCrash(t *testing.T, bin string, hosted bool) {
	domain := "remote.crash.nhs.test"
	var sk *sink
	if hosted {
		domain = "hosted.crash.nhs.test"
	} else {
		sk = startSink(t)
	}
	maildirRoot := filepath.Join(t.TempDir(), "maildir")
	r := newRelay(t, bin, func(cfg map[string]any) {
		rl := table(cfg, "relay")
		rl["maildir_root"] = maildirRoot
		rl["hop_concurrency"] = hopConcurrency
		// A delivery cut short by the kill is retried soon after restart.
		rl["retry_min"] = "1s"
		rl["retry_max"] = "2s"
	})
	r.start(t)
	if hosted {
		r.addEndpoint(t, domain, `{"kind":"hosted"}`)
	} else {
		r.addEndpoint(t, domain, fmt.Sprintf(`{"kind":"host","host":%q,"tls":"plain-loopback"}`, sk.addr))
	}

	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	src := newSenders()
	for wave, prefix := range []string{"p", "q"} {
		before := src.acks.Load()
		src.start(t, ctx, r.smtpAddr, prefix, domain, nSenders, perSender)
		waitFor(t, 90*time.Second, fmt.Sprintf("wave %d: %d acknowledgements", wave+1, killAfter), func() bool {
			return src.acks.Load()-before >= killAfter
		})
		r.kill9(t)
		if sk != nil {
			sk.epoch.Add(1) // connections from here on are the next process's
		}
		t.Logf("wave %d: killed nhsrelay after %d acknowledgements", wave+1, src.acks.Load()-before)
		src.wait() // smtp-source exits when its connection dies
		r.start(t)
	}

	// Drain: the queue empties once every message is delivered.
	waitFor(t, 2*time.Minute, "the queue to drain", func() bool { return r.queueLen(t) == 0 })
	r.stop(t)

	var got map[string]int
	maxDup := 0 // a Maildir gets each message exactly once
	if hosted {
		got = countMaildir(t, maildirRoot)
	} else {
		d := sk.deliveries()
		got = make(map[string]int, len(d))
		for tok, epochs := range d {
			got[tok] = len(epochs)
		}
		maxDup = checkRedeliveries(t, d, relayConcurrency)
	}
	checkDeliveries(t, src.snapshot(), got, maxDup)
}

// checkRedeliveries accepts a second delivery to the remote hop only as the
// consequence of a crash (RFC 1047): the earlier one must have been made by
// a process that was then killed, and one kill can repeat at most perKill
// deliveries. It returns how many repeats there were in all.
func checkRedeliveries(t *testing.T, d map[string][]int64, perKill int) int {
	t.Helper()
	byKill := map[int64]int{} // epoch of the killed process → repeats it caused
	var same []string
	total := 0
	for tok, epochs := range d {
		if len(epochs) < 2 {
			continue
		}
		sorted := append([]int64(nil), epochs...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
		for i := 1; i < len(sorted); i++ {
			if sorted[i] == sorted[i-1] {
				same = append(same, fmt.Sprintf("%s (process %d)", tok, sorted[i]))
				continue
			}
			byKill[sorted[i-1]]++
			total++
		}
	}
	if len(same) > 0 {
		t.Errorf("delivered twice by the same relay process, with no crash in between: %s", first(same, 20))
	}
	for epoch, n := range byKill {
		t.Logf("kill %d: %d deliveries made before it were repeated after the restart", epoch+1, n)
		if n > perKill {
			t.Errorf("kill %d caused %d repeated deliveries, more than the %d attempts that can be in flight", epoch+1, n, perKill)
		}
	}
	return total
}

// checkDeliveries holds what arrived (token → count) against what the
// senders saw. maxDup is how many extra deliveries in all are tolerated.
func checkDeliveries(t *testing.T, tokens map[string]tokenState, got map[string]int, maxDup int) {
	t.Helper()
	var lost, aborted, unknown, dups []string
	var nAcked, nDoubt, nDoubtArrived, extra int
	for tok, st := range tokens {
		n := got[tok]
		switch st {
		case acked:
			nAcked++
			if n == 0 {
				lost = append(lost, tok)
			}
		case dotSent:
			nDoubt++
			if n > 0 {
				nDoubtArrived++
			}
		case rcptSent, refused:
			if n > 0 {
				aborted = append(aborted, fmt.Sprintf("%s (%d×)", tok, n))
			}
		}
		if n > 1 {
			dups = append(dups, fmt.Sprintf("%s (%d×)", tok, n))
			extra += n - 1
		}
	}
	for tok, n := range got {
		if _, ok := tokens[tok]; !ok {
			unknown = append(unknown, fmt.Sprintf("%s (%d×)", tok, n))
		}
	}
	t.Logf("%d messages acknowledged, %d in doubt at a kill (%d of them delivered), %d duplicate deliveries",
		nAcked, nDoubt, nDoubtArrived, extra)
	if nAcked < 2*killAfter {
		t.Errorf("only %d messages acknowledged; the load did not run as planned", nAcked)
	}
	if len(lost) > 0 {
		t.Errorf("%d acknowledged messages never arrived (RFC 5321 §6.1): %s", len(lost), first(lost, 20))
	}
	if len(aborted) > 0 {
		t.Errorf("messages whose DATA never completed (or was refused) were delivered: %s", first(aborted, 20))
	}
	if len(unknown) > 0 {
		t.Errorf("deliveries to addresses no sender used (a DSN?): %s", first(unknown, 20))
	}
	if extra > maxDup {
		t.Errorf("%d duplicate deliveries, want at most %d: %s", extra, maxDup, first(dups, 20))
	}
}

func first(ss []string, n int) string {
	sort.Strings(ss)
	if len(ss) > n {
		return strings.Join(ss[:n], ", ") + fmt.Sprintf(", ... (%d in all)", len(ss))
	}
	return strings.Join(ss, ", ")
}

// waitFor polls cond every 50ms until it holds, failing the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
