package expiry

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-message/mail"
)

// maxLine keeps every body line well inside RFC 5322 §2.1.1's 998
// characters, as 8bit needs (RFC 2045 §2.8).
const maxLine = 900

// summaryMail is the administrators' summary as an RFC 5322 message with
// CRLF line endings. Lines hold addresses, ODS codes, certificate
// subjects, file names and dates, never clinical content; control
// characters are dropped so no line can end the header or the message
// early.
func summaryMail(from, to string, s summary, now time.Time) ([]byte, error) {
	var h mail.Header
	h.SetAddressList("From", []*mail.Address{{Name: "nhsrelay", Address: from}})
	h.SetAddressList("To", []*mail.Address{{Address: to}})
	h.SetSubject("nhsrelay expiry summary " + now.UTC().Format(time.DateOnly))
	h.SetDate(now)
	if err := h.GenerateMessageID(); err != nil {
		return nil, err
	}
	h.Set("Auto-Submitted", "auto-generated") // RFC 3834 §5
	h.Set("MIME-Version", "1.0")
	h.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
	h.Set("Content-Transfer-Encoding", "8bit")
	var b bytes.Buffer
	w, err := mail.CreateSingleInlineWriter(&b, h)
	if err != nil {
		return nil, err
	}
	writeSummary(w, s)
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func writeSummary(w io.Writer, s summary) {
	line := func(l string) {
		l = strings.Map(func(r rune) rune {
			if r < ' ' || r == 0x7f {
				return ' '
			}
			return r
		}, l)
		if len(l) > maxLine {
			l = strings.ToValidUTF8(l[:maxLine], "") + "…"
		}
		io.WriteString(w, l+"\r\n")
	}
	if s.dirFailed {
		line("The directory's expiry check failed; see the server log (expiry check failed).")
	} else {
		line(fmt.Sprintf("%d verified endpoints checked: %d due soon, %d suspended.", s.dir.Checked, len(s.dir.Warnings), len(s.dir.Suspended)))
	}
	for _, l := range s.dir.Lines {
		line(l)
	}
	line("")
	line(fmt.Sprintf("Certificates this server uses: %d need attention.", len(s.certLines)))
	for _, l := range s.certLines {
		line(l)
	}
}
