package challengereply

import (
	"strings"
	"testing"
	"unicode/utf8"

	"nhsrelay/directory"
)

// FuzzParse: any message parses or fails cleanly, never panics, and what
// comes out stays within the bounds.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"From: <gp.b@nhs.example>\r\n\r\n" + code + "\r\n",
		"From: <a@b>\r\nContent-Type: multipart/alternative; boundary=x\r\n\r\n--x\r\nContent-Type: text/html\r\n\r\n<p>" + code + "</p>\r\n--x--\r\n",
		"From: <a@b>\r\nContent-Type: multipart/signed; boundary=s\r\n\r\n--s\r\n\r\nsigned\r\n--s\r\n\r\nsig\r\n--s--\r\n",
		"From: <a@b>\r\nContent-Transfer-Encoding: base64\r\n\r\nSzdRWE0tMkhWUEE=\r\n",
		"From: <a@b>\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=4B7QXM-2HVPA=\r\n=ZZ\r\n",
		"From: <a@b>\r\nContent-Type: text/plain; charset=utf-16\r\n\r\n\xfe\xff\x00K",
		"From: <a@b>\r\nContent-Type: multipart/mixed; boundary=\"\"\r\n\r\n",
		"From: <a@b>\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n",
		"Auto-Submitted: (((\r\nFrom: ,,,\r\n\r\n",
		" bad\r\n\r\n", "", "\r\n", "From: <a@b>",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := strings.NewReader(s)
		got, err := parse(r)
		if len(got.text) > directory.MaxReplyText {
			t.Fatalf("len(text) = %d > MaxReplyText", len(got.text))
		}
		if err != nil && got.text != "" {
			t.Fatalf("error %v with text %q", err, got.text)
		}
		if read := len(s) - r.Len(); read > maxScan {
			t.Fatalf("read %d bytes > maxScan", read)
		}
		if len(got.auto) > 100 {
			t.Fatalf("auto marker %d bytes", len(got.auto))
		}
	})
}

// FuzzHTMLText: never panics, bounded output, valid UTF-8 in, valid out.
func FuzzHTMLText(f *testing.F) {
	for _, s := range []string{"<p>" + code + "</p>", "<blockquote>" + code, "<!--", "<a href='>'>x</a>",
		"&#75;7QXM-2HVPA", "<pre>\r\n</pre>", "<script/>" + code, "</blockquote></blockquote>" + code, "<<<>>>", "&nbsp;\u200b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := htmlText(s)
		if len(out) > directory.MaxReplyText {
			t.Fatalf("len = %d", len(out))
		}
		if utf8.ValidString(s) && !utf8.ValidString(out) && len(out) < directory.MaxReplyText {
			t.Fatalf("valid input %q gave invalid UTF-8 %q", s, out)
		}
	})
}

// FuzzKeyword: bounded, lower case, never a ';'.
func FuzzKeyword(f *testing.F) {
	for _, s := range []string{"no", "auto-replied; x=y", "(c) no", `(\)`, "((((", ";"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k := keyword(s)
		if len(k) > 40 || strings.ContainsRune(k, ';') || k != strings.ToLower(k) {
			t.Fatalf("keyword(%q) = %q", s, k)
		}
	})
}
