package smtpd

import (
	"fmt"
	"strings"
	"testing"
)

// bdat sends msg as BDAT chunks (RFC 3030 CHUNKING), cut at the given
// offsets, each chunk answered before the next is sent. It returns the
// reply to the first chunk that was not answered 250 (chunk received), or the
// reply to BDAT LAST.
func (rc *rawConn) bdat(msg string, cuts ...int) string {
	rc.t.Helper()
	start := 0
	for i := 0; i <= len(cuts); i++ {
		end := len(msg)
		last := " LAST"
		if i < len(cuts) {
			end, last = cuts[i], ""
		}
		rc.send(fmt.Sprintf("BDAT %d%s\r\n%s", end-start, last, msg[start:end]))
		got := rc.reply()
		if last != "" || !strings.HasPrefix(got, "250 2.0.0 chunk received") {
			return got
		}
		start = end
	}
	panic("unreachable")
}

// everyN returns the offsets that cut a message of length n into chunks.
func everyN(n, chunks int) []int {
	var cuts []int
	for i := 1; i < chunks; i++ {
		cuts = append(cuts, i*n/chunks)
	}
	return cuts
}

// submitRaw is a raw session on 587 after STARTTLS, EHLO and AUTH PLAIN.
func (ts *testServer) submitRaw(t *testing.T) *rawConn {
	t.Helper()
	rc := greeted(t, ts.sub)
	rc.want("EHLO client.example", "250 ")
	rc.startTLS(ts)
	rc.want("EHLO client.example", "250 ")
	rc.want("AUTH PLAIN "+plainIR(user, pass), "235 ")
	return rc
}

// TestBDATManyChunks: a message in 150 chunks (Exchange sends BDAT to
// anyone who offers CHUNKING, and go-smtp always does) is accepted whole,
// although each BDAT is a command line and MaxJunkCommands is 100: chunks
// that carry data move the transaction forward.
func TestBDATManyChunks(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	msg := message(own) + strings.Repeat("line of a long clinical letter\r\n", 150)
	t.Run("mx plaintext", func(t *testing.T) {
		t.Parallel()
		rc := greeted(t, ts.mx)
		rc.want("EHLO client.example", "250 ")
		rc.want("MAIL FROM:<a@b.example>", "250 ")
		rc.want("RCPT TO:<"+hosted+">", "250 ")
		if got := rc.bdat(msg, everyN(len(msg), 150)...); !strings.HasPrefix(got, "250 2.0.0 Ok: queued as ") {
			t.Fatalf("after 150 chunks: %q, want 250 queued", got)
		}
		rc.want("QUIT", "221 ")
	})
	t.Run("submission over TLS", func(t *testing.T) {
		t.Parallel()
		rc := ts.submitRaw(t)
		rc.want("MAIL FROM:<"+own+">", "250 ")
		rc.want("RCPT TO:<"+remote+">", "250 ")
		if got := rc.bdat(msg, everyN(len(msg), 150)...); !strings.HasPrefix(got, "250 2.0.0 Ok: queued as ") {
			t.Fatalf("after 150 chunks: %q, want 250 queued", got)
		}
		rc.want("QUIT", "221 ")
	})
	t.Cleanup(func() {
		msgs := ts.queue.all()
		if len(msgs) != 2 {
			t.Fatalf("queued %d messages, want 2", len(msgs))
		}
		for _, m := range msgs {
			if !strings.HasSuffix(m.body, msg) {
				t.Errorf("queued body is not the message as sent:\n%.200s", m.body)
			}
		}
	})
}

// TestBDATEmptyChunksAreJunk: chunks without data do not move anything
// forward, so an endless run of them meets the junk-command limit.
func TestBDATEmptyChunksAreJunk(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *Config) { c.MaxJunkCommands = 5 })
	rc := greeted(t, ts.mx)
	rc.want("EHLO client.example", "250 ")
	rc.want("MAIL FROM:<a@b.example>", "250 ")
	rc.want("RCPT TO:<"+hosted+">", "250 ")
	var got string
	for range 10 {
		if got = rc.cmd("BDAT 0"); !strings.HasPrefix(got, "250 ") {
			break
		}
	}
	if !strings.HasPrefix(got, "421 4.7.0 relay.nhs.example too many commands") {
		t.Fatalf("after empty chunks: %q, want 421 4.7.0", got)
	}
}

// TestBDATContentChecks: a message sent with BDAT meets the same checks as
// one sent with DATA — bare CR/LF, header size, From: — on the stream of
// chunks as a whole, wherever the chunk boundaries fall.
func TestBDATContentChecks(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *Config) { c.MaxHeaderBytes = 1024 })
	bigHeader := "From: <" + own + ">\r\n" + strings.Repeat("X-Filler: 0123456789012345678901234567890123456789\r\n", 30) + "\r\nbody\r\n"
	for _, tc := range []struct {
		name string
		msg  string
		cuts []int
		want string
	}{
		{"bare LF", message(own) + "line one\nline two\r\n", nil, "554 5.6.0 message contains a bare LF/CR"},
		{"bare CR", message(own) + "line one\rline two\r\n", nil, "554 5.6.0 message contains a bare LF/CR"},
		{"bare LF in a later chunk", message(own) + strings.Repeat("filler\r\n", 20) + "x\ny\r\n", []int{len(message(own)), len(message(own)) + 80}, "554 5.6.0 "},
		{"CR at the end of the message", message(own) + "no LF\r", nil, "554 5.6.0 "},
		{"CRLF split across chunks", message(own) + "ab\r\ncd\r\n", []int{len(message(own)) + 3}, "250 2.0.0 Ok: queued as "},
		{"header too large", bigHeader, everyN(len(bigHeader), 4), "552 5.3.4 message header exceeds the limit of 1024 bytes"},
		{"spoofed From", message(other), everyN(len(message(other)), 2), "553 5.7.1 From: header address <" + other + ">"},
		{"missing From", "Subject: x\r\n\r\nbody\r\n", nil, "550 5.7.1 From: header is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := ts.submitRaw(t)
			rc.want("MAIL FROM:<"+own+">", "250 ")
			rc.want("RCPT TO:<"+remote+">", "250 ")
			if got := rc.bdat(tc.msg, tc.cuts...); !strings.HasPrefix(got, tc.want) {
				t.Fatalf("reply = %q, want %q", got, tc.want)
			}
			// The transaction is over either way; the session goes on.
			rc.want("RSET", "250 ")
		})
	}
	t.Cleanup(func() {
		msgs := ts.queue.all()
		if len(msgs) != 1 || !strings.HasSuffix(msgs[0].body, "ab\r\ncd\r\n") {
			t.Errorf("queued %d messages, want only the one with a split CRLF", len(msgs))
		}
		for _, m := range msgs {
			if strings.Contains(strings.ReplaceAll(m.body, "\r\n", ""), "\r") || strings.Contains(strings.ReplaceAll(m.body, "\r\n", ""), "\n") {
				t.Errorf("queued a bare CR or LF: %q", m.body)
			}
		}
	})
}
