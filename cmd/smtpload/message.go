package main

import (
	"bytes"
	"fmt"
	"time"
)

// buildMessage returns a message shaped like smtp-source's: a few header
// fields, a blank line, then length payload bytes in lines of at most 78
// "X"s (RFC 5322 §2.1.1 recommends 78), CRLF-terminated. id makes the
// Message-Id unique.
func buildMessage(from, to, subject, id string, length int, now time.Time) []byte {
	var b bytes.Buffer
	b.Grow(length + length/78*2 + 512)
	fmt.Fprintf(&b, "From: <%s>\r\nTo: <%s>\r\nDate: %s\r\nMessage-Id: <%s>\r\n",
		from, to, now.Format(time.RFC1123Z), id)
	if subject != "" {
		fmt.Fprintf(&b, "Subject: %s\r\n", subject)
	}
	b.WriteString("\r\n")
	line := bytes.Repeat([]byte("X"), 78)
	for left := length; left > 0; {
		n := min(left, len(line))
		b.Write(line[:n])
		b.WriteString("\r\n")
		left -= n
	}
	return b.Bytes()
}
