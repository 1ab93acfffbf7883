package crashtest

import (
	"strings"
	"testing"
)

// A real smtp-source -v -N transcript (paths and replies as nhsrelay and
// Postfix print them): one message acknowledged, one refused at the end of
// DATA, one cut off after ".", one cut off before it.
const sourceLog = `/usr/sbin/smtp-source: name_mask: all
/usr/sbin/smtp-source: <<< 220 relay.nhs.example ESMTP nhsrelay, secure NHS clinical mail relay; authorised use only
/usr/sbin/smtp-source: HELO crash-source.localhost
/usr/sbin/smtp-source: <<< 250 relay.nhs.example greets crash-source.localhost
/usr/sbin/smtp-source: MAIL FROM:<s@x>
/usr/sbin/smtp-source: <<< 250 2.1.0 sender <s@x> accepted
/usr/sbin/smtp-source: RCPT TO:<1P03@X>
/usr/sbin/smtp-source: <<< 250 2.1.5 recipient <1p03@x> accepted
/usr/sbin/smtp-source: DATA
/usr/sbin/smtp-source: <<< 354 send the message; end it with a line holding only a dot
/usr/sbin/smtp-source: .
/usr/sbin/smtp-source: <<< 250 2.0.0 Ok: queued as 33NBJFE3700H8RDRB3A2B11DX2
/usr/sbin/smtp-source: QUIT
/usr/sbin/smtp-source: RCPT TO:<2p03@x>
/usr/sbin/smtp-source: <<< 250 2.0.0 ok
/usr/sbin/smtp-source: DATA
/usr/sbin/smtp-source: <<< 354 go ahead
/usr/sbin/smtp-source: .
/usr/sbin/smtp-source: <<< 451 4.3.0 local error, quote abc to the service desk
/usr/sbin/smtp-source: RCPT TO:<3p03@x>
/usr/sbin/smtp-source: <<< 250 2.0.0 ok
/usr/sbin/smtp-source: DATA
/usr/sbin/smtp-source: <<< 354 go ahead
/usr/sbin/smtp-source: .
/usr/sbin/smtp-source: fatal: unexpected EOF while sending message
smtp-source: RCPT TO:<4p03@x>
smtp-source: <<< 250 2.0.0 ok
smtp-source: fatal: lost connection while sending DATA command
`

func TestFollow(t *testing.T) {
	t.Parallel()
	s := newSenders()
	s.follow(strings.NewReader(sourceLog))
	want := map[string]tokenState{"1p03@x": acked, "2p03@x": refused, "3p03@x": dotSent, "4p03@x": rcptSent}
	got := s.snapshot()
	for tok, st := range want {
		if got[tok] != st {
			t.Errorf("state of %s = %d, want %d", tok, got[tok], st)
		}
	}
	if len(got) != len(want) {
		t.Errorf("tokens = %v, want %v", got, want)
	}
	if n := s.acks.Load(); n != 1 {
		t.Errorf("acks = %d, want 1", n)
	}
	if p := s.problems(); len(p) != 2 {
		t.Errorf("problems = %q, want the 2 fatal lines", p)
	}
}

// FuzzFollow: any log is read without panic, and every acknowledgement
// counted belongs to a token that ended acknowledged or was named again.
func FuzzFollow(f *testing.F) {
	f.Add(sourceLog)
	f.Add("smtp-source: .\nsmtp-source: <<< 250 ok\n")
	f.Add("smtp-source: RCPT TO:<\nsmtp-source: .\nsmtp-source: <<< 2")
	f.Add("smtp-source: RCPT TO:<a>\nsmtp-source: .\nsmtp-source: <<< 250\nsmtp-source: <<< 250\n")
	f.Fuzz(func(t *testing.T, log string) {
		s := newSenders()
		s.follow(strings.NewReader(log))
		nAcked := 0
		for _, st := range s.snapshot() {
			if st == acked {
				nAcked++
			}
		}
		if n := s.acks.Load(); n < int64(nAcked) {
			t.Fatalf("acks = %d but %d tokens are acknowledged", n, nAcked)
		}
		if s.acks.Load() > int64(strings.Count(log, "<<< 2")) {
			t.Fatalf("acks = %d, more than the 2xx replies in the log", s.acks.Load())
		}
	})
}
