package smtpd

import (
	"fmt"
	"strconv"

	"github.com/emersion/go-smtp"
)

// checkPath refuses a MAIL FROM or RCPT TO address that no mailbox can
// have, before anything looks it up or echoes it:
//
//   - control characters (NUL, CR, LF, DEL, ...): RFC 5321 §4.1.2 builds a
//     Mailbox from atext, qtext and quoted-pairs of printable ASCII and
//     space, none of which is a control character; go-smtp passes them
//     on. 501 with X.1.7 (bad sender's mailbox address syntax) or X.1.3
//     (bad destination mailbox address syntax), RFC 3463 §3.2;
//   - any octet above 127: this relay does not offer SMTPUTF8, and RFC
//     6531 §3.5 has a server without it refuse non-ASCII addresses; 553
//     X.6.7 "non-ASCII addresses not permitted" (RFC 6531 §3.7.4.1).
//
// The reply names the offending character by position and code, never the
// raw bytes (which a client could not read back, and which oneLine would
// turn into spaces).
func checkPath(addr string, sender bool) *smtp.SMTPError {
	detail, which := 3, "recipient"
	if sender {
		detail, which = 7, "sender"
	}
	for i := 0; i < len(addr); i++ {
		c := addr[i]
		switch {
		case c < 0x20 || c == 0x7f:
			return reply(501, 1, detail, fmt.Sprintf("%s address contains the control character %s at position %d; remove it and send the address again",
				which, controlName(c), i+1))
		case c >= 0x80:
			return reply(553, 6, 7, fmt.Sprintf("%s address contains a non-ASCII character at position %d (%s) and this relay does not offer SMTPUTF8 (RFC 6531); use the address's ASCII form",
				which, i+1, strconv.QuoteToASCII(string([]rune(addr[i:])[0]))))
		}
	}
	return nil
}

// controlName names a control character as an operator would look it up.
func controlName(c byte) string {
	switch c {
	case 0:
		return "NUL (0x00)"
	case '\t':
		return "TAB (0x09)"
	case '\n':
		return "LF (0x0A)"
	case '\r':
		return "CR (0x0D)"
	case 0x1b:
		return "ESC (0x1B)"
	case 0x7f:
		return "DEL (0x7F)"
	}
	return fmt.Sprintf("0x%02X", c)
}
