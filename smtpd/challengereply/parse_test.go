package challengereply

import (
	"bytes"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"

	"nhsrelay/directory"
)

const code = "K7QXM-2HVPA"

// crlf turns a message written with \n into one with CRLF line endings.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

func utf16le(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = append(b, byte(u), byte(u>>8))
	}
	return b
}

func TestParse(t *testing.T) {
	t.Parallel()
	b64 := base64.StdEncoding.EncodeToString([]byte("Here is the code: " + code + "\r\n"))
	spaced := b64[:8] + " \t" + b64[8:20] + "\r\n" + b64[20:]
	u16 := base64.StdEncoding.EncodeToString(utf16le("Code " + code + "\r\n"))
	for _, tc := range []struct {
		name      string
		msg       string
		from      []string
		auto      string
		text      string // wanted in the text ("" wants none)
		notText   string // never in the text
		encrypted bool
		err       error
	}{
		{name: "plain", msg: crlf("From: GP <gp.b@nhs.example>\nSubject: Re: code\n\n" + code + "\n"),
			from: []string{"gp.b@nhs.example"}, text: code},
		{name: "no content type is US-ASCII text", msg: crlf("From: gp.b@nhs.example\n\nyes " + code + "\n"),
			from: []string{"gp.b@nhs.example"}, text: "yes " + code},
		{name: "quoted-printable", msg: crlf("From: <gp.b@nhs.example>\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\nThe code=\n is K7QXM=2D2HVPA =E2=9C=93\n"),
			from: []string{"gp.b@nhs.example"}, text: "The code is " + code + " ✓"},
		{name: "base64 with spaces", msg: crlf("From: <gp.b@nhs.example>\nContent-Transfer-Encoding: BASE64\n\n") + spaced + "\r\n",
			from: []string{"gp.b@nhs.example"}, text: "Here is the code: " + code},
		{name: "corrupt base64 keeps the prefix", msg: crlf("From: <gp.b@nhs.example>\nContent-Transfer-Encoding: base64\n\n") + b64[:24] + "!!!!\r\n",
			from: []string{"gp.b@nhs.example"}, text: "Here is the code:"},
		{name: "utf-16le", msg: crlf("From: <gp.b@nhs.example>\nContent-Type: text/plain; charset=\"UTF-16LE\"\nContent-Transfer-Encoding: base64\n\n") + u16 + "\r\n",
			from: []string{"gp.b@nhs.example"}, text: "Code " + code},
		{name: "alternative prefers plain", msg: crlf(`From: <gp.b@nhs.example>
Content-Type: multipart/alternative; boundary="b1"

--b1
Content-Type: text/html

<p>html ` + "PPPPP-PPPPP" + `</p>
--b1
Content-Type: text/plain

plain ` + code + `
--b1--
`), from: []string{"gp.b@nhs.example"}, text: "plain " + code, notText: "PPPPP"},
		{name: "html only, quote left out", msg: crlf(`From: <gp.b@nhs.example>
Content-Type: text/html; charset=windows-1252

<html><head><title>QQQQQ-QQQQQ</title></head><body><p>Confirmed:&nbsp;` + code + `</p>
<blockquote><p>Verification code: ZZZZZ-ZZZZZ</p></blockquote></body></html>
`), from: []string{"gp.b@nhs.example"}, text: "Confirmed: " + code, notText: "ZZZZZ"},
		{name: "mixed with attachment first", msg: crlf(`From: <gp.b@nhs.example>
Content-Type: multipart/mixed; boundary=outer

--outer
Content-Type: text/plain
Content-Disposition: attachment; filename=notes.txt

attached AAAAA-AAAAA
--outer
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain; charset=us-ascii

nested ` + code + `
--inner--
--outer--
`), from: []string{"gp.b@nhs.example"}, text: "nested " + code, notText: "AAAAA"},
		{name: "signed: the content, not the signature", msg: crlf(`From: <gp.b@nhs.example>
Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary=s

--s
Content-Type: text/plain

signed ` + code + `
--s
Content-Type: application/pkcs7-signature

MIAGCSqGSIb3DQEHAqCAMIACAQEx
--s--
`), from: []string{"gp.b@nhs.example"}, text: "signed " + code},
		{name: "forwarded message is not the sender's text", msg: crlf(`From: <gp.b@nhs.example>
Content-Type: multipart/mixed; boundary=m

--m
Content-Type: message/rfc822

From: x@y
Subject: old

old ` + code + `
--m--
`), from: []string{"gp.b@nhs.example"}, notText: code},
		{name: "encrypted", msg: crlf("From: <gp.b@nhs.example>\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\nContent-Transfer-Encoding: base64\n\nMIAGCSqGSIb3DQEHA6CAMIACAQAx\n"),
			from: []string{"gp.b@nhs.example"}, encrypted: true},
		{name: "auto-replied", msg: crlf("From: <gp.b@nhs.example>\nAuto-Submitted: auto-replied (vacation); owner-email=\"x@y\"\n\nI am away\n"),
			from: []string{"gp.b@nhs.example"}, auto: "Auto-Submitted: auto-replied", text: "I am away"},
		{name: "auto-submitted no", msg: crlf("From: <gp.b@nhs.example>\nAuto-Submitted: No (a person)\n\n" + code + "\n"),
			from: []string{"gp.b@nhs.example"}, text: code},
		{name: "auto-submitted empty", msg: crlf("From: <gp.b@nhs.example>\nAuto-Submitted: \n\n" + code + "\n"),
			from: []string{"gp.b@nhs.example"}, auto: "Auto-Submitted: ", text: code},
		{name: "precedence bulk", msg: crlf("From: <gp.b@nhs.example>\nPrecedence: bulk\n\n" + code + "\n"),
			from: []string{"gp.b@nhs.example"}, auto: "Precedence: bulk", text: code},
		{name: "x-autoreply", msg: crlf("From: <gp.b@nhs.example>\nX-Autoreply: yes\n\n" + code + "\n"),
			from: []string{"gp.b@nhs.example"}, auto: "X-Autoreply: yes", text: code},
		{name: "two From fields", msg: crlf("From: <gp.b@nhs.example>\nFrom: <x@y.example>\n\n" + code + "\n"), text: code},
		{name: "two From addresses", msg: crlf("From: <gp.b@nhs.example>, <x@y.example>\n\n" + code + "\n"),
			from: []string{"gp.b@nhs.example", "x@y.example"}, text: code},
		{name: "no From", msg: crlf("Subject: x\n\n" + code + "\n"), text: code},
		{name: "encoded display name", msg: crlf("From: =?iso-8859-1?q?J=F6rg?= <gp.b@nhs.example>\n\n" + code + "\n"),
			from: []string{"gp.b@nhs.example"}, text: code},
		{name: "multipart without boundary", msg: crlf("From: <gp.b@nhs.example>\nContent-Type: multipart/mixed\n\n" + code + "\n"),
			from: []string{"gp.b@nhs.example"}, err: errUnreadable},
		{name: "malformed header", msg: crlf(" folded first line\nFrom: <gp.b@nhs.example>\n\n" + code + "\n"), err: errUnreadable},
		{name: "unknown transfer encoding", msg: crlf("From: <gp.b@nhs.example>\nContent-Transfer-Encoding: x-uuencode\n\n" + code + "\n"),
			from: []string{"gp.b@nhs.example"}, notText: code},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parse(strings.NewReader(tc.msg))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("parse error = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if !slices.Equal(got.from, tc.from) {
				t.Errorf("from = %q, want %q", got.from, tc.from)
			}
			if got.auto != tc.auto {
				t.Errorf("auto = %q, want %q", got.auto, tc.auto)
			}
			if tc.text != "" && !strings.Contains(got.text, tc.text) {
				t.Errorf("text = %q, want it to contain %q", got.text, tc.text)
			}
			if tc.notText != "" && strings.Contains(got.text, tc.notText) {
				t.Errorf("text = %q, must not contain %q", got.text, tc.notText)
			}
			if got.encrypted != tc.encrypted {
				t.Errorf("encrypted = %v, want %v", got.encrypted, tc.encrypted)
			}
		})
	}
}

// TestParseLimits goes past every bound: the text is cut at
// MaxReplyText, a code past maxScan is not seen, deep nesting and many
// parts stop the walk without an error.
func TestParseLimits(t *testing.T) {
	t.Parallel()
	t.Run("text cut at MaxReplyText", func(t *testing.T) {
		t.Parallel()
		body := strings.Repeat("x", directory.MaxReplyText+100) + " " + code + "\r\n"
		got, err := parse(strings.NewReader("From: <a@b.example>\r\n\r\n" + body))
		if err != nil {
			t.Fatal(err)
		}
		if len(got.text) != directory.MaxReplyText || strings.Contains(got.text, code) {
			t.Errorf("len(text) = %d (contains code: %v), want %d without the code", len(got.text), strings.Contains(got.text, code), directory.MaxReplyText)
		}
	})
	t.Run("nothing read past maxScan", func(t *testing.T) {
		t.Parallel()
		var b bytes.Buffer
		b.WriteString("From: <a@b.example>\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\nContent-Type: image/png\r\n\r\n")
		for b.Len() < maxScan+1000 {
			b.WriteString(strings.Repeat("A", 76) + "\r\n")
		}
		b.WriteString("--m\r\nContent-Type: text/plain\r\n\r\n" + code + "\r\n--m--\r\n")
		r := bytes.NewReader(b.Bytes())
		got, err := parse(r)
		if err != nil {
			t.Fatalf("parse: %v (stopping at maxScan is not an error)", err)
		}
		if strings.Contains(got.text, code) {
			t.Errorf("found a code past maxScan")
		}
		if read := int64(b.Len()) - int64(r.Len()); read > maxScan {
			t.Errorf("read %d bytes, more than maxScan %d", read, maxScan)
		}
	})
	t.Run("deep nesting", func(t *testing.T) {
		t.Parallel()
		var b strings.Builder
		b.WriteString("From: <a@b.example>\r\n")
		for i := range maxDepth + 5 {
			b.WriteString("Content-Type: multipart/mixed; boundary=b" + string(rune('a'+i)) + "\r\n\r\n--b" + string(rune('a'+i)) + "\r\n")
		}
		b.WriteString("Content-Type: text/plain\r\n\r\n" + code + "\r\n")
		got, err := parse(strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("parse: %v", err)
		}
		if got.text != "" {
			t.Errorf("text %q found below maxDepth", got.text)
		}
	})
	t.Run("many parts", func(t *testing.T) {
		t.Parallel()
		var b strings.Builder
		b.WriteString("From: <a@b.example>\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n")
		for range maxParts + 5 {
			b.WriteString("--m\r\nContent-Type: image/gif\r\n\r\nGIF89a\r\n")
		}
		b.WriteString("--m\r\nContent-Type: text/plain\r\n\r\n" + code + "\r\n--m--\r\n")
		got, err := parse(strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("parse: %v", err)
		}
		if got.text != "" {
			t.Errorf("text %q found past maxParts", got.text)
		}
	})
}

func TestKeyword(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"no": "no", " No ": "no", "auto-replied; owner-email=x": "auto-replied",
		"(a (nested) comment) auto-generated (why)": "auto-generated", `(esc\) still) no`: "no",
		"": "", "(unclosed no": "", strings.Repeat("x", 100): strings.Repeat("x", 40),
	} {
		if got := keyword(in); got != want {
			t.Errorf("keyword(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDecodeCharset(t *testing.T) {
	t.Parallel()
	be := []byte{0xfe, 0xff, 0, 'O', 0, 'K'}
	for _, tc := range []struct {
		label string
		in    []byte
		want  string
	}{
		{"utf-16", be, "OK"},
		{"utf-16", []byte{0xff, 0xfe, 'O', 0, 'K', 0}, "OK"},
		{"utf-16", []byte{0, 'O', 0, 'K'}, "OK"}, // RFC 2781 §4.3: big-endian without a BOM
		{"UTF-16BE", []byte{0, 'O', 0, 'K', 0}, "OK"},
		{"unicode", []byte{'O', 0, 'K', 0}, "OK"},
		{"utf-32", []byte{0, 0, 0xfe, 0xff, 0, 0, 0, 'O'}, "O"},
		{"utf-32le", []byte{'O', 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, "O\uFFFD"},
		{"iso-8859-1", []byte("K7QXM-2HVPA \xa3"), "K7QXM-2HVPA \xa3"},
		{"", []byte("plain"), "plain"},
	} {
		if got := decodeCharset(tc.label, tc.in); got != tc.want {
			t.Errorf("decodeCharset(%q, %q) = %q, want %q", tc.label, tc.in, got, tc.want)
		}
	}
}
