package smimepolicy

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

func TestCopyStripped(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"folded", "A: 1\r\nX-NHSRelay-SMIME: verified;\r\n signer=forged\r\nB: 2\r\n\r\nX-NHSRelay-SMIME: body\r\n",
			"A: 1\r\nB: 2\r\n\r\nX-NHSRelay-SMIME: body\r\n"},
		{"case and space before colon", "x-nhsrelay-smime : a\r\nX-NHSRELAY-SMIME:b\r\nC: 3\r\n\r\n", "C: 3\r\n\r\n"},
		{"similar names kept", "X-NHSRelay-SMIME-Other: a\r\nX-NHSRelay-SMIM: b\r\n\r\n", "X-NHSRelay-SMIME-Other: a\r\nX-NHSRelay-SMIM: b\r\n\r\n"},
		{"LF only", "X-NHSRelay-SMIME: a\nB: 2\n\nbody\n", "B: 2\n\nbody\n"},
		{"no body", "X-NHSRelay-SMIME: a\r\nB: 2\r\n", "B: 2\r\n"},
		{"long line", "X-NHSRelay-SMIME: " + strings.Repeat("a", 200<<10) + "\r\nB: 2\r\n\r\n", "B: 2\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := copyStripped(&out, strings.NewReader(tc.in), TraceHeader); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Errorf("copyStripped(%.60q) = %.60q, want %.60q", tc.in, out.String(), tc.want)
			}
		})
	}
}

// FuzzCopyStripped: whatever the input, the output's header section has no
// trace field, the body is untouched, and nothing but trace lines is lost.
func FuzzCopyStripped(f *testing.F) {
	for _, s := range []string{"X-NHSRelay-SMIME: a\r\n\r\nb", "A: 1\r\n X-NHSRelay-SMIME: folded\r\n\r\n",
		"\r\nX-NHSRelay-SMIME: body", "X-NHSRelay-SMIME\t:\r\n\tx\r\nFrom: a@b\r\n\r\n", "", "\n", "X-NHSRelay-SMIME: a\rB: c\n\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var out bytes.Buffer
		if err := copyStripped(&out, strings.NewReader(in), TraceHeader); err != nil {
			t.Fatal(err)
		}
		hdr, complete, err := readHeaderBlock(bufio.NewReader(bytes.NewReader(out.Bytes())), len(in)+1)
		if err != nil {
			t.Fatal(err)
		}
		for line := range bytes.Lines(hdr) {
			if isField(line, TraceHeader) {
				t.Fatalf("trace field survived in %q → %q", in, out.String())
			}
		}
		if complete {
			body := out.Bytes()[len(hdr):]
			if !strings.HasSuffix(in, string(body)) {
				t.Fatalf("body changed: %q → %q", in, out.String())
			}
		}
		if out.Len() > len(in) {
			t.Fatalf("output longer than input")
		}
	})
}

// FuzzFromAddresses: the header helpers never panic, and an address found
// is in the input.
func FuzzFromAddresses(f *testing.F) {
	for _, s := range []string{"From: A <a@b.test>\r\n\r\n", "From: a@b, c@d\r\n\tx\r\n", "From:\r\n\r\n", "From: =?utf-8?q?x?= <a@b>\r\n", "from : <@>\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		addrs, ok := fromAddresses([]byte(in))
		if ok && len(addrs) == 0 {
			t.Fatal("ok without addresses")
		}
		rawFields([]byte(in), "Received")
	})
}
