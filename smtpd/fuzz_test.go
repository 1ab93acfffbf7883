package smtpd

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/emersion/go-message/textproto"

	"nhsrelay/directory"
)

// Accepted From: values yield addresses that are safe to compare and log;
// the rest fail cleanly, never panic.
func FuzzParseAddressList(f *testing.F) {
	for _, s := range []string{"GP <gp.a81001@nhs.example>", "a@b.example, c@d.example", "\"x, y\" <a@b>",
		"=?koi8-r?B?8NLJ18XU?= <a@b.example>", "undisclosed:;", "<<<", "", "a@b@c", "(comment) a@b.example",
		"=?x?q?=ZZ?= <a@b>", "a\r\n@b", strings.Repeat("a", 9000) + "@b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		addrs, err := parseAddressList(s)
		if err != nil {
			return
		}
		if len(addrs) == 0 {
			t.Fatalf("%q: no error and no address", s)
		}
		for _, a := range addrs {
			if !strings.Contains(a, "@") || strings.ContainsAny(a, "\r\n") {
				t.Fatalf("%q → unsafe address %q", s, a)
			}
		}
		acct := directory.Account{Addresses: addrs}
		h := textproto.Header{}
		h.Set("From", s)
		if err := checkFrom(h, acct); err != nil && !strings.ContainsAny(s, "\r\n") {
			t.Fatalf("%q: account owning %q refused: %v", s, addrs, err)
		}
	})
}

// The line-ending check agrees with the definition: no CR or LF outside a
// CRLF pair, whatever the read sizes; clean input passes through unchanged.
func FuzzLineEndings(f *testing.F) {
	for _, v := range smugglingVectors {
		f.Add([]byte("a" + v + "b\r\n"))
	}
	f.Add([]byte("ok\r\n\r\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		want := bytes.ContainsAny(bytes.ReplaceAll(b, []byte("\r\n"), nil), "\r\n")
		l := &lineEndingReader{r: iotest.OneByteReader(bytes.NewReader(b))}
		out, err := io.ReadAll(l)
		if got := errors.Is(err, ErrBareLineEnding); got != want {
			t.Fatalf("%q: bare = %v (err %v), want %v", b, got, err, want)
		}
		if err == nil && !bytes.Equal(out, b) {
			t.Fatalf("%q passed through as %q", b, out)
		}
	})
}

// The header gate passes messages through byte for byte or refuses them
// with one of its errors, whatever the input and limit.
func FuzzHeaderReader(f *testing.F) {
	f.Add([]byte("From: a@b\r\nSubject: x\r\n\r\nbody\r\n"), 100)
	f.Add([]byte("\r\nbody"), 10)
	f.Add([]byte("no header line\r\n\r\n"), 100)
	f.Add([]byte("Subject: only header"), 5)
	f.Add([]byte(" leading space: x\r\n\r\n"), 100)
	f.Fuzz(func(t *testing.T, b []byte, limit int) {
		if limit <= 0 || limit > 1<<16 {
			return
		}
		h := &headerReader{r: iotest.HalfReader(bytes.NewReader(b)), limit: limit}
		out, err := io.ReadAll(h)
		if err != nil {
			if !errors.Is(err, ErrHeaderTooLarge) && !errors.Is(err, ErrHeaderMalformed) {
				t.Fatalf("%q: unexpected error %v", b, err)
			}
			return
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("%q passed through as %q", b, out)
		}
	})
}

// The wire scanner never panics, and after a DATA stream's <CRLF>.<CRLF>
// it is back reading commands.
func FuzzScanner(f *testing.F) {
	f.Add([]byte("EHLO x\r\nBDAT 3 LAST\r\nabcDATA\r\n"), []byte("hello\r\n.\r\n"))
	f.Add([]byte("STARTTLS\r\n"), []byte("a\n.\nb\r\n.\r"))
	f.Fuzz(func(t *testing.T, cmds, data []byte) {
		var s scanner
		s.scan(cmds, 0)
		s.skip = 0
		s.startData()
		s.scan(data, int64(len(cmds)))
		if !s.data {
			return // data held its own end; what follows were commands
		}
		// From any state of go-smtp's dataReader this reaches the end.
		s.scan([]byte("\r\n\r\n.\r\n"), 0)
		if s.data {
			t.Fatalf("still in DATA after <CRLF>.<CRLF>: %q", data)
		}
		s.scan([]byte("DATA\r\n"), 1000)
		if s.dataEnd != 1006 {
			t.Fatalf("DATA line after %q not seen (dataEnd %d)", data, s.dataEnd)
		}
	})
}
