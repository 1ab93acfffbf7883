package smtpd

import (
	"bytes"
	"fmt"
	"strings"
)

// go-smtp answers some commands itself, with texts of its own ("Roger,
// accepting mail from ...", "I'll make sure ... gets this") and a few
// codes that RFC 5321 would have otherwise (502 where §4.2.4 says 503,
// "bad sequence of commands"; 500 for an unknown MAIL parameter, §4.1.1.11
// says 555). It has no hook for them (go-smtp issue #97 and PR #188 were
// declined), and it writes each reply line with one Write to the conn it
// was given, which is wireConn, below which we do TLS ourselves
// (starttls.go): so every line it writes passes here in plaintext, and
// writeOurs replaces each stock line it knows by ours, with an enhanced
// code (RFC 3463). Lines it does not know — our own replies, which our
// session methods return — pass unchanged.

// writeOurs writes one reply line from go-smtp as the client should see it.
func (w *wireConn) writeOurs(p []byte) error {
	line, ok := w.ourLine(p)
	if !ok {
		_, err := w.Conn.Write(p)
		return err
	}
	out := []byte(line + "\r\n")
	// RFC 3207 §4: STARTTLS is offered in the EHLO reply while plaintext;
	// go-smtp, which does not do our TLS, cannot list it.
	if bytes.HasPrefix(p, []byte("250-Hello ")) && w.offersSTARTTLS() {
		out = append(out, "250-STARTTLS\r\n"...)
	}
	_, err := w.Conn.Write(out)
	return err
}

// ourLine returns our text for a stock go-smtp reply line, ok false for
// any other line.
func (w *wireConn) ourLine(p []byte) (string, bool) {
	s, ok := strings.CutSuffix(string(p), "\r\n")
	if !ok || len(s) < 4 || (s[3] != ' ' && s[3] != '-') {
		return "", false
	}
	code, sep, text := s[:3], s[3:4], s[4:]
	if len(text) >= 6 && text[1] == '.' && (text[3] == '.' || text[4] == '.') {
		if i := strings.IndexByte(text, ' '); i > 0 {
			text = text[i+1:] // the enhanced code; ours replaces it
		}
	}
	host := w.srv.cfg.Hostname
	arg := func(prefix, suffix string) (string, bool) {
		a, ok := strings.CutPrefix(text, prefix)
		if !ok {
			return "", false
		}
		return strings.CutSuffix(a, suffix)
	}
	if code == "220" && strings.HasSuffix(text, " ESMTP Service Ready") {
		return "220 " + host + " ESMTP nhsrelay, secure NHS clinical mail relay; authorised use only", true
	}
	if a, ok := arg("Hello ", ""); ok && code == "250" {
		if sep == "-" { // EHLO: RFC 5321 §4.1.1.1, the first line names us
			return "250-" + host + " greets " + a, true
		}
		return "250 " + host + " greets " + a, true // HELO: no enhanced codes (RFC 2034 §3)
	}
	if a, ok := arg("Roger, accepting mail from <", ">"); ok {
		return "250 2.1.0 sender <" + a + "> accepted", true // RFC 3463 §3.2 X.1.0
	}
	if a, ok := arg("I'll make sure <", "> gets this"); ok {
		return "250 2.1.5 recipient <" + a + "> accepted", true // §3.2 X.1.5: destination address valid
	}
	if a, ok := arg("", " command not implemented"); ok {
		return "502 5.5.1 " + a + " is not offered by this relay", true
	}
	if _, ok := arg("Syntax errors, ", " command unrecognized"); ok {
		return "500 5.5.2 command not recognised", true
	}
	if a, ok := arg("Maximum limit of ", " recipients reached"); ok {
		return "452 4.5.3 too many recipients: at most " + a + " in one message; send to the others in another message", true // RFC 5321 §4.5.3.1.10
	}
	if a, ok := arg("", " is not implemented"); ok && code == "504" {
		return "504 5.5.4 " + a + " is not offered by this relay", true
	}
	if a, ok := arg("Malformed ", " parameter value"); ok {
		return "501 5.5.4 the " + a + " parameter is malformed", true
	}
	if a, ok := arg("", " not allowed during message transfer"); ok {
		return "503 5.5.1 " + a + " is not allowed during a BDAT transfer; end it with BDAT LAST", true
	}
	if r, ok := w.fixedLine(code, text); ok {
		return r, true
	}
	return "", false
}

// fixedLine maps go-smtp's fixed stock texts.
func (w *wireConn) fixedLine(code, text string) (string, bool) {
	host := w.srv.cfg.Hostname
	switch code + " " + text {
	case "354 Go ahead. End your data with <CR><LF>.<CR><LF>":
		return "354 send the message; end it with a line holding only a dot", true
	case "250 Session reset":
		return "250 2.0.0 transaction reset", true
	case "250 I have successfully done nothing":
		return "250 2.0.0 OK", true
	case "221 Bye":
		return "221 2.0.0 " + host + " closing connection", true
	case "252 Cannot VRFY user, but will accept message":
		return "252 2.5.0 VRFY is not offered (addresses are not disclosed); send the message and the reply to RCPT says whether a recipient is accepted", true // RFC 5321 §3.5.3
	case "500 Error: bad syntax":
		return "500 5.5.2 empty command line", true
	case "501 Bad command": // go-smtp's parser: too short, or no space after the verb
		return "501 5.5.2 command not recognised", true
	case "500 Too long line, closing connection":
		return "500 5.5.2 command line too long; closing connection", true
	case "421 Idle timeout, bye bye":
		return "421 4.4.2 " + host + " no command for too long, closing connection", true
	case "421 Connection error, sorry":
		return "421 4.4.0 " + host + " connection error, closing connection", true
	case "421 Internal server error":
		return "421 4.3.0 " + host + " local error, closing connection; try again later", true
	case "421 Too busy. Try again later.":
		return "421 4.3.2 " + host + " too busy, try again later", true
	case "500 Too many errors. Quiting now":
		return "500 5.5.1 too many errors, closing connection", true
	case "501 Domain/address argument required for HELO":
		return "501 5.5.2 EHLO and HELO need your host name", true
	case "500 This is not a LMTP server":
		return "500 5.5.1 this is SMTP, not LMTP: send EHLO", true
	case "502 Please introduce yourself first.":
		return "503 5.5.1 send EHLO first", true // RFC 5321 §4.2.4: bad sequence
	case "502 Missing MAIL FROM command.":
		return "503 5.5.1 send MAIL FROM first", true
	case "502 Missing RCPT TO command.":
		return "503 5.5.1 no recipient accepted yet: send RCPT TO first", true
	case "501 Was expecting MAIL arg syntax of FROM:<address>":
		return "501 5.5.2 syntax: MAIL FROM:<address>", true
	case "501 Was expecting RCPT arg syntax of TO:<address>":
		return "501 5.5.2 syntax: RCPT TO:<address>", true
	case "501 Unable to parse MAIL ESMTP parameters", "501 Unable to parse RCPT ESMTP parameters":
		return "501 5.5.4 parameters malformed", true
	case "501 Unable to parse SIZE as an integer":
		return "501 5.5.4 SIZE must be a number of octets", true
	case "552 Max message size exceeded":
		return fmt.Sprintf("552 5.3.4 message exceeds the size limit of %d bytes; send it smaller, or in several messages", w.srv.cfg.MaxMessageBytes), true
	case "501 Unknown BODY value":
		return "501 5.5.4 BODY must be 7BIT or 8BITMIME", true
	case "501 Unknown RET value":
		return "501 5.5.4 RET must be FULL or HDRS", true
	case "500 Unknown MAIL FROM argument", "500 Unknown RCPT TO argument":
		return "555 5.5.4 parameter not recognised or not offered", true // RFC 5321 §4.1.1.11
	case "501 BY parameter is below server minimum", "501 MT-PRIORITY is outside valid range":
		return "501 5.5.4 parameter value out of range", true
	case "503 Already authenticated":
		return "503 5.5.1 already authenticated", true
	case "502 Missing parameter":
		return "501 5.5.4 AUTH needs a mechanism: PLAIN or LOGIN", true
	case "454 Invalid base64 data":
		return "501 5.5.2 malformed AUTH response; send it base64-encoded", true // RFC 4954 §4
	case "501 Negotiation cancelled":
		return "501 5.7.0 authentication cancelled", true // RFC 4954 §4
	case "235 Authentication succeeded":
		return "235 2.7.0 authentication succeeded", true // RFC 4954 §6
	case "502 TLS not supported", "502 Already running in TLS":
		if w.tlsConn != nil {
			return "503 5.5.1 TLS is already active", true
		}
		if w.offersSTARTTLS() { // a STARTTLS we did not take: it had parameters
			return "501 5.5.4 STARTTLS takes no parameters", true
		}
		return "502 5.5.1 STARTTLS is not offered on this port", true
	case "501 DATA command should not have any arguments":
		return "501 5.5.4 DATA takes no parameters", true
	case "501 Missing chunk size argument", "501 Too many arguments", "501 Unknown BDAT argument", "501 Malformed size argument":
		return "501 5.5.4 syntax: BDAT <size> [LAST]", true
	case "250 Continue":
		return "250 2.0.0 chunk received", true
	case "250 OK: queued":
		return "250 2.0.0 queued", true
	}
	if strings.HasPrefix(code+" "+text, "554 Error: transaction failed: ") {
		return "554 5.0.0 transaction failed", true // never the error's own text
	}
	return "", false
}
