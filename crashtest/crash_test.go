package crashtest

import (
	"context"
	"fmt"
	"path/filepath"
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

// TestKill9 is issue 3's crash test: 20 concurrent senders (smtp-source
// towards the remote sink, authenticated Go clients towards the Maildir;
// see doc.go), kill -9 of nhsrelay in the middle of the load, restart;
// twice, the second time while the first crash's queue is still being
// delivered. Every
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
		r.addEndpoint(t, domain, `{"kind":"hosted"}`, false)
	} else {
		r.addEndpoint(t, domain, fmt.Sprintf(`{"kind":"host","host":%q,"tls":"plain-loopback"}`, sk.addr), true)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	src := newSenders()
	for wave, prefix := range []string{"p", "q"} {
		before := src.acks.Load()
		if hosted {
			src.startSubmit(t, ctx, r.smtpAddr, r.relayCA(), r.account, prefix, domain, nSenders, perSender)
		} else {
			src.start(t, ctx, r.smtpAddr, prefix, domain, nSenders, perSender)
		}
		waitFor(t, 90*time.Second, fmt.Sprintf("wave %d: %d acknowledgements", wave+1, killAfter), func() bool {
			if src.alive.Load() == 0 && src.acks.Load()-before < killAfter {
				t.Fatalf("wave %d: every smtp-source ended after %d acknowledgements: %s",
					wave+1, src.acks.Load()-before, first(src.problems(), 5))
			}
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
	var problems []string
	if hosted {
		got = countMaildir(t, maildirRoot)
	} else {
		d := sk.deliveries()
		got = make(map[string]int, len(d))
		for tok, epochs := range d {
			got[tok] = len(epochs)
		}
		var notes []string
		maxDup, notes, problems = checkRedeliveries(d, relayConcurrency)
		for _, n := range notes {
			t.Log(n)
		}
	}
	summary, more := checkDeliveries(src.snapshot(), got, maxDup, 2*killAfter)
	t.Log(summary)
	for _, p := range append(problems, more...) {
		t.Error(p)
	}
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
