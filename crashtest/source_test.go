package crashtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// tokenState is what one sender knows about one message, from its own
// side of the dialogue.
type tokenState int

const (
	// rcptSent: RCPT was sent but the final "." never was; the
	// transaction is incomplete and the message must never be delivered.
	rcptSent tokenState = iota + 1
	// dotSent: the whole message and "." were sent but no reply came
	// (the relay died first). It may or may not have been kept; if it
	// arrives, at most once at a Maildir.
	dotSent
	// acked: the relay answered 250 to the end of DATA. It must arrive.
	acked
	// refused: the relay answered the end of DATA with an error.
	refused
)

// senders runs smtp-source processes and tracks, per message, how far each
// got. Every message has its own envelope recipient, which is the token:
// smtp-source -N prepends a per-process sequence number to the recipient,
// and each process has its own recipient local part.
type senders struct {
	mu     sync.Mutex
	tokens map[string]tokenState // envelope recipient → state
	// refusedWith is the reply code of each refused message (submitters only).
	refusedWith map[string]string
	fatals      []string     // smtp-source's own "fatal:" lines, for the failure message
	acks        atomic.Int64 // how many acked in all
	alive       atomic.Int64 // processes still running
	wg          sync.WaitGroup
}

func newSenders() *senders {
	return &senders{tokens: make(map[string]tokenState), refusedWith: make(map[string]string)}
}

// start launches n smtp-source processes, each sending msgs messages one
// after the other over fresh connections to addr, to recipients
// "<seq><prefix><i>@domain". The processes end by themselves: when done,
// or at the first failure (smtp-source exits when the relay dies).
func (s *senders) start(t *testing.T, ctx context.Context, addr, prefix, domain string, n, msgs int) {
	t.Helper()
	bin := lookTool(t, "smtp-source")
	for i := range n {
		cmd := exec.CommandContext(ctx, bin,
			"-v",      // log the dialogue on stderr: how we learn which messages got 250
			"-N",      // unique recipient per message: the token
			"-s", "1", // one session per process, so its log is one sequential dialogue
			"-m", fmt.Sprint(msgs),
			"-l", "2048",
			"-M", "crash-source.localhost",
			"-f", "crash-sender@"+domain,
			"-t", fmt.Sprintf("%s%02d@%s", prefix, i, domain),
			addr)
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatalf("smtp-source stderr: %v", err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start smtp-source: %v", err)
		}
		s.alive.Add(1)
		s.wg.Go(func() {
			defer s.alive.Add(-1)
			s.follow(stderr)
			cmd.Wait() // a non-zero exit is expected when the relay is killed
		})
	}
}

// wait waits for every smtp-source process to end.
func (s *senders) wait() { s.wg.Wait() }

// follow reads one smtp-source -v log. The dialogue of one message is
//
//	smtp-source: RCPT TO:<17p03@crash.nhs.test>
//	smtp-source: <<< 250 2.1.5 Ok
//	smtp-source: DATA
//	smtp-source: <<< 354 ...
//	smtp-source: .
//	smtp-source: <<< 250 2.0.0 Ok: queued as ...
//
// so the reply that follows "." decides the message named by the last RCPT.
func (s *senders) follow(r io.Reader) {
	sc := bufio.NewScanner(r)
	var rcpt string
	afterDot := false
	for sc.Scan() {
		// Lines start with the program name as invoked (argv[0]).
		_, line, ok := strings.Cut(sc.Text(), "smtp-source: ")
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(line, "fatal: "):
			s.mu.Lock()
			s.fatals = append(s.fatals, line)
			s.mu.Unlock()
		case strings.HasPrefix(line, "RCPT TO:<"):
			rcpt = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(line, "RCPT TO:<"), ">"))
			afterDot = false
			s.set(rcpt, rcptSent)
		case line == "." && rcpt != "":
			afterDot = true
			s.set(rcpt, dotSent)
		case afterDot && strings.HasPrefix(line, "<<< "):
			if strings.HasPrefix(line, "<<< 2") {
				s.set(rcpt, acked)
				s.acks.Add(1)
			} else {
				s.set(rcpt, refused)
			}
			afterDot, rcpt = false, ""
		}
	}
	io.Copy(io.Discard, r)
}

func (s *senders) set(token string, st tokenState) {
	s.mu.Lock()
	s.tokens[token] = st
	s.mu.Unlock()
}

// problems returns the fatal errors the processes reported so far.
func (s *senders) problems() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.fatals...)
}

// snapshot returns a copy of every token's state.
func (s *senders) snapshot() map[string]tokenState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]tokenState, len(s.tokens))
	for k, v := range s.tokens {
		out[k] = v
	}
	return out
}
