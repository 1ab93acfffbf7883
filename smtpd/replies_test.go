package smtpd

import (
	"regexp"
	"strings"
	"testing"
)

// stockTexts are go-smtp's own words; none may reach a client.
var stockTexts = []string{"Roger", "I'll make sure", "Go ahead", "Session reset", "successfully done nothing",
	"Bye", "Cannot VRFY", "command not implemented", "Syntax errors", "Please introduce", "Missing ",
	"Was expecting", "Service Ready", "Hello ", "Continue", "Quiting", "not implemented", "Authentication succeeded"}

// enhanced matches a reply line with an RFC 3463 enhanced code whose
// class is the basic code's first digit.
var enhanced = regexp.MustCompile(`^([245])\d\d [245]\.\d{1,3}\.\d{1,3} `)

// TestRepliesAreOurs walks every command go-smtp answers itself, before
// and after STARTTLS and on 465, and checks each reply is ours: none of
// go-smtp's stock texts, an enhanced code of the right class where RFC
// 2034 asks for one, and the codes RFC 5321 gives (503 for a bad
// sequence, not go-smtp's 502).
func TestRepliesAreOurs(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	check := func(t *testing.T, rc *rawConn, cmd, want string) {
		t.Helper()
		rc.send(cmd + "\r\n")
		lines := rc.replyAll()
		last := lines[len(lines)-1]
		if !strings.HasPrefix(last, want) {
			t.Errorf("%s → %q, want %q", cmd, last, want)
		}
		for _, l := range lines {
			for _, s := range stockTexts {
				if strings.Contains(l, s) {
					t.Errorf("%s → %q: go-smtp's stock text %q", cmd, l, s)
				}
			}
		}
		if code := last[:3]; code != "354" && !strings.HasPrefix(cmd, "EHLO") && !strings.HasPrefix(cmd, "HELO") {
			if m := enhanced.FindStringSubmatch(last); m == nil || m[1] != last[:1] || last[4] != last[0] {
				t.Errorf("%s → %q: no enhanced code of the reply's class", cmd, last)
			}
		}
	}
	walk := func(t *testing.T, rc *rawConn, authed bool) {
		t.Helper()
		check(t, rc, "HELO client.example", "250 relay.nhs.example greets client.example")
		check(t, rc, "EHLO client.example", "250 ")
		check(t, rc, "NOOP", "250 2.0.0 OK")
		check(t, rc, "VRFY gp.a81001@nhs.example", "252 2.5.0 ")
		check(t, rc, "EXPN staff", "502 5.5.1 EXPN is not offered")
		check(t, rc, "HELP", "502 5.5.1 HELP is not offered")
		check(t, rc, "FROBNICATE", "501 5.5.2 command not recognised")
		check(t, rc, "FROB x", "500 5.5.2 command not recognised")
		check(t, rc, "RCPT TO:<"+hosted+">", "503 5.5.1 send MAIL FROM first")
		check(t, rc, "MAIL TO:<"+own+">", "501 5.5.2 syntax: MAIL FROM:<address>")
		check(t, rc, "MAIL FROM:<"+own+"> SIZE=x", "501 5.5.4 SIZE must be a number")
		check(t, rc, "MAIL FROM:<"+own+"> FOO=bar", "555 5.5.4 ")
		check(t, rc, "MAIL FROM:<"+own+"> SIZE=4000000000", "552 5.3.4 message exceeds the size limit")
		check(t, rc, "MAIL FROM:<"+own+"> SMTPUTF8", "504 5.5.4 SMTPUTF8 is not offered")
		if !authed {
			check(t, rc, "MAIL FROM:<peer@trust.nhs.example>", "250 2.1.0 sender <peer@trust.nhs.example> accepted")
		} else {
			check(t, rc, "MAIL FROM:<"+own+">", "250 2.1.0 sender <"+own+"> accepted")
		}
		check(t, rc, "DATA", "503 5.5.1 no recipient accepted yet")
		check(t, rc, "RCPT TO:<"+hosted+">", "250 2.1.5 recipient <"+hosted+"> accepted")
		check(t, rc, "DATA extra", "501 5.5.4 DATA takes no parameters")
		check(t, rc, "DATA", "354 ")
		check(t, rc, "From: <"+own+">\r\nSubject: x\r\n\r\nbody\r\n.", "250 2.0.0 Ok: queued as ")
		check(t, rc, "RSET", "250 2.0.0 transaction reset")
		check(t, rc, "BDAT x", "501 5.5.4 syntax: BDAT <size> [LAST]")
		check(t, rc, "QUIT", "221 2.0.0 relay.nhs.example closing connection")
	}

	t.Run("mx plaintext", func(t *testing.T) {
		t.Parallel()
		rc := dialRaw(t, ts.mx)
		greeting := rc.replyAll()
		if last := greeting[len(greeting)-1]; last != "220 relay.nhs.example ESMTP nhsrelay, secure NHS clinical mail relay; authorised use only" {
			t.Errorf("greeting = %q", greeting)
		}
		rc.send("EHLO client.example\r\n")
		ehlo := rc.replyAll()
		if ehlo[0] != "250-relay.nhs.example greets client.example" || !strings.Contains(strings.Join(ehlo, "\n"), "250-STARTTLS") {
			t.Errorf("EHLO reply = %q, want our name first and STARTTLS offered", ehlo)
		}
		check(t, rc, "STARTTLS now", "501 5.5.4 STARTTLS takes no parameters")
		walk(t, rc, false)
	})
	t.Run("mx after STARTTLS", func(t *testing.T) {
		t.Parallel()
		rc := greeted(t, ts.mx)
		rc.want("EHLO client.example", "250 ")
		rc.startTLS(ts)
		check(t, rc, "MAIL FROM:<peer@trust.nhs.example>", "503 5.5.1 send EHLO again after STARTTLS")
		rc.send("EHLO client.example\r\n")
		ehlo := strings.Join(rc.replyAll(), "\n")
		if strings.Contains(ehlo, "STARTTLS") {
			t.Errorf("STARTTLS offered again inside TLS:\n%s", ehlo)
		}
		check(t, rc, "STARTTLS", "503 5.5.1 TLS is already active")
		walk(t, rc, false)
	})
	t.Run("submission after STARTTLS", func(t *testing.T) {
		t.Parallel()
		rc := greeted(t, ts.sub)
		rc.want("EHLO client.example", "250 ")
		rc.startTLS(ts)
		rc.send("EHLO client.example\r\n")
		if ehlo := strings.Join(rc.replyAll(), "\n"); !strings.Contains(ehlo, "AUTH PLAIN LOGIN") {
			t.Errorf("AUTH not offered after STARTTLS:\n%s", ehlo)
		}
		check(t, rc, "AUTH", "501 5.5.4 AUTH needs a mechanism")
		check(t, rc, "AUTH PLAIN !!!", "501 5.5.2 malformed AUTH response")
		check(t, rc, "AUTH PLAIN "+plainIR(user, pass), "235 2.7.0 authentication succeeded")
		check(t, rc, "AUTH PLAIN "+plainIR(user, pass), "503 5.5.1 already authenticated")
		walk(t, rc, true)
	})
	t.Run("implicit TLS", func(t *testing.T) {
		t.Parallel()
		rc := ts.dialTLSRaw(t)
		rc.want("EHLO client.example", "250 ")
		check(t, rc, "AUTH PLAIN "+plainIR(user, pass), "235 2.7.0 ")
		walk(t, rc, true)
	})
}

// STARTTLS may end a pipelined group (RFC 2920 §3.1) and may arrive in
// pieces; each is answered in order.
func TestSTARTTLSPipelinedAndSplit(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	rc := greeted(t, ts.sub)
	rc.want("EHLO client.example", "250 ")
	rc.send("NOOP\r\nSTARTTLS\r\n")
	if got := rc.reply(); !strings.HasPrefix(got, "250 2.0.0 OK") {
		t.Fatalf("NOOP → %q", got)
	}
	rc.startTLSAnswered(ts)
	rc.want("EHLO client.example", "250 ")
	rc.want("AUTH PLAIN "+plainIR(user, pass), "235 ")

	rc2 := greeted(t, ts.mx)
	rc2.want("EHLO client.example", "250 ")
	rc2.send("STAR")
	rc2.send("tTLS\r")
	rc2.send("\n")
	rc2.startTLSAnswered(ts)
	rc2.want("EHLO client.example", "250 ")
	rc2.want("MAIL FROM:<peer@trust.nhs.example>", "250 2.1.0 ")
}
