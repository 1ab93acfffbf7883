package smtpd

import (
	"strings"
	"testing"
	"time"
)

// The SMTP smuggling vectors (SEC Consult, CVE-2023-51764 and kin): each is
// an end-of-data that some server honours and others do not.
var smugglingVectors = map[string]string{
	"LF.LF":   "\n.\n",
	"CR.CR":   "\r.\r",
	"CRLF.CR": "\r\n.\r",
	"LF.CRLF": "\n.\r\n",
	"CRCRLF":  "\r\r\n",
	"CRLF.LF": "\r\n.\n",
	"bare LF": "\n",
	"bare CR": "\r",
}

// smuggle is one message with vector inside, carrying a second, smuggled
// transaction, and the real end of data.
func smuggle(vector string) string {
	return "From: <a@b.example>\r\nSubject: first\r\n\r\nhello" + vector +
		"MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<" + hosted + ">\r\nDATA\r\n" +
		"From: <" + own + ">\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n"
}

// checkNothingSmuggled fails if anything from the smuggled message was queued.
func checkNothingSmuggled(t *testing.T, ts *testServer) {
	t.Helper()
	for _, m := range ts.queue.all() {
		if m.env.From == "evil@attacker.example" || strings.Count(m.body, "Received: ") > 1 {
			t.Errorf("smuggled message queued: %+v", m.env)
		}
	}
}

// TestSmugglingPlaintextMX sends each vector byte for byte on port 25,
// where the server sees the raw stream: every one is refused.
func TestSmugglingPlaintextMX(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	for name, vec := range smugglingVectors {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rc := greeted(t, ts.mx)
			rc.want("EHLO client.example", "250 ")
			rc.want("MAIL FROM:<a@b.example>", "250 ")
			rc.want("RCPT TO:<"+hosted+">", "250 ")
			rc.want("DATA", "354 ")
			rc.send(smuggle(vec))
			if got := rc.reply(); !strings.HasPrefix(got, "554 5.6.0 message contains a bare LF/CR") {
				t.Fatalf("reply = %q, want 554 5.6.0", got)
			}
			// Whatever follows is read as commands, and finds no transaction.
			rc.want("QUIT", "221 ")
			checkNothingSmuggled(t, ts)
		})
	}
	t.Cleanup(func() {
		if n := len(ts.queue.all()); n != 0 {
			t.Errorf("queued %d messages, want 0", n)
		}
	})
}

// TestSmugglingOverSTARTTLS sends the vectors after STARTTLS. STARTTLS is
// done by our wire layer below go-smtp (starttls.go), so the raw stream
// stays visible after it as on 465, and every vector is refused, "\r\n.\r"
// (whose ".\r" go-smtp's dot-unstuffing drops) included.
func TestSmugglingOverSTARTTLS(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	for _, port := range []string{"submission", "mx"} {
		for name, vec := range smugglingVectors {
			t.Run(port+"/"+name, func(t *testing.T) {
				t.Parallel()
				from, to, addr := own, remote, ts.sub
				if port == "mx" {
					from, to, addr = "peer@trust.nhs.example", hosted, ts.mx
				}
				rc := greeted(t, addr)
				rc.want("EHLO client.example", "250 ")
				rc.startTLS(ts)
				rc.want("EHLO client.example", "250 ")
				if port == "submission" {
					rc.want("AUTH PLAIN "+plainIR(user, pass), "235 ")
				}
				rc.want("MAIL FROM:<"+from+">", "250 ")
				rc.want("RCPT TO:<"+to+">", "250 ")
				rc.want("DATA", "354 ")
				rc.send(strings.Replace(smuggle(vec), "<a@b.example>", "<"+own+">", 1))
				want := "554 5.6.0 "
				if got := rc.reply(); !strings.HasPrefix(got, want) {
					t.Fatalf("reply = %q, want %q", got, want)
				}
				rc.want("QUIT", "221 ")
			})
		}
	}
	t.Cleanup(func() {
		checkNothingSmuggled(t, ts)
		if n := len(ts.queue.all()); n != 0 {
			t.Fatalf("queued %d messages, want 0", n)
		}
	})
}

// TestSmugglingImplicitTLS: on 465 our own TLS layer sits below the wire
// scanner, so it sees the raw stream and every vector, CRLF.CR included, is
// refused.
func TestSmugglingImplicitTLS(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	for name, vec := range smugglingVectors {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rc := ts.dialTLSRaw(t)
			rc.want("EHLO client.example", "250 ")
			rc.want("AUTH PLAIN "+plainIR(user, pass), "235 ")
			rc.want("MAIL FROM:<"+own+">", "250 ")
			rc.want("RCPT TO:<"+remote+">", "250 ")
			rc.want("DATA", "354 ")
			rc.send(strings.Replace(smuggle(vec), "<a@b.example>", "<"+own+">", 1))
			if got := rc.reply(); !strings.HasPrefix(got, "554 5.6.0 message contains a bare LF/CR") {
				t.Fatalf("reply = %q, want 554 5.6.0", got)
			}
			rc.want("QUIT", "221 ")
		})
	}
	t.Cleanup(func() {
		if n := len(ts.queue.all()); n != 0 {
			t.Errorf("queued %d messages, want 0", n)
		}
	})
}

// TestPipeliningViolations: clients that talk where RFC 2920 says they must
// wait are refused with 554 5.5.1 and disconnected, and nothing is queued.
func TestPipeliningViolations(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	// Long enough that the client's early bytes arrive within it; a
	// well-behaved client would wait for the greeting all that time.
	slow := startServer(t, func(c *Config) { c.GreetWait = 10 * time.Second })
	txn := "MAIL FROM:<a@b.example>\r\nRCPT TO:<" + hosted + ">\r\nDATA\r\n"
	msg := "Subject: early\r\n\r\nearly\r\n.\r\n"
	// Submission gets no pregreet wait: its greeting is one line at once.
	if got := dialRaw(t, slow.sub).reply(); !strings.HasPrefix(got, "220 ") {
		t.Errorf("submission greeting = %q, want a single-line 220 without the pregreet wait", got)
	}
	for _, tc := range []struct {
		name, addr string
		greet      bool   // wait for the greeting first
		before     string // sent and answered one by one
		burst      string // sent in one write
		want       string
	}{
		{"before greeting", slow.mx, false, "", "EHLO client.example\r\n", "554 5.5.1 relay.nhs.example protocol error: client sent data before the greeting"},
		{"before EHLO reply", ts.mx, true, "", "EHLO client.example\r\n" + txn, "554 5.5.1 relay.nhs.example protocol error: commands sent before the reply to EHLO"},
		{"content before 354", ts.mx, true, "EHLO client.example", txn + msg, "554 5.5.1 relay.nhs.example protocol error: message content sent before the 354"},
		{"after STARTTLS", ts.sub, true, "EHLO client.example", "STARTTLS\r\nEHLO injected\r\n", "554 5.5.1 relay.nhs.example protocol error: data sent after STARTTLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := dialRaw(t, tc.addr)
			if tc.greet {
				if got := rc.reply(); !strings.HasPrefix(got, "220 ") {
					t.Fatalf("greeting = %q", got)
				}
			}
			if tc.before != "" {
				rc.want(tc.before, "250 ")
			}
			rc.send(tc.burst)
			var got string
			for range 10 { // replies to the pipelined commands that were allowed
				if got = rc.reply(); !strings.HasPrefix(got, "2") {
					break
				}
			}
			if !strings.HasPrefix(got, tc.want) {
				t.Fatalf("reply = %q, want %q", got, tc.want)
			}
			if !rc.closed() {
				t.Errorf("connection left open")
			}
		})
	}
	t.Run("allowed pipelining", func(t *testing.T) {
		t.Parallel()
		rc := greeted(t, ts.mx)
		rc.want("EHLO client.example", "250 ")
		rc.send(txn)
		for _, want := range []string{"250 ", "250 ", "354 "} {
			if got := rc.reply(); !strings.HasPrefix(got, want) {
				t.Fatalf("reply = %q, want %q", got, want)
			}
		}
		rc.send(msg + "QUIT\r\n") // commands after the end of data may be pipelined
		for _, want := range []string{"250 2.0.0 Ok: queued as ", "221 "} {
			if got := rc.reply(); !strings.HasPrefix(got, want) {
				t.Fatalf("reply = %q, want %q", got, want)
			}
		}
	})
	t.Cleanup(func() {
		if n := len(ts.queue.all()); n != 1 {
			t.Errorf("queued %d messages, want only the allowed one", n)
		}
	})
}
