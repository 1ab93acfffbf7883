package challengereply

import (
	"slices"
	"strings"
	"testing"

	"nhsrelay/directory"
)

func TestHTMLText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   string
		want string // ReplyCodes of the text, joined by ","
	}{
		{"typed in a paragraph", "<p>Hi,</p><p>the code is " + code + "</p>", code},
		{"blockquote is quoted", "<p>yes</p><blockquote type=cite><div>Verification code: " + code + "</div></blockquote>", ""},
		{"nested blockquotes", "<blockquote><blockquote>a</blockquote>" + code + "</blockquote>", ""},
		{"after a blockquote", "<blockquote>old</blockquote><p>" + code + "</p>", code},
		{"quoted line wrapped in the source", "<div>Verification\r\n code: " + code + "</div>", ""},
		{"nbsp before the quoted line", "<div>&nbsp;&nbsp;Verification&nbsp;code: " + code + "</div>", ""},
		{"zero-width space before the quoted line", "<div>\u200bVerification code: " + code + "</div>", ""},
		{"line breaks", "ok<br>" + code + "<br/>bye", code},
		{"entities", "<p>K7QXM&#45;2HVPA</p>", code},
		{"script, style and comments", "<script>var c='" + code + "'</script><style>/*" + code + "*/</style><!-- " + code + " --><p>none</p>", ""},
		{"title", "<head><title>" + code + "</title></head><body>none</body>", ""},
		{"pre keeps lines", "<pre>Verification code: AAAAA-AAAAA\n" + code + "</pre>", code},
		{"unclosed tag ends the text", "<p>" + code + "</p><a href=\"x", code},
		{"unclosed comment ends the text", "<!-- " + code, ""},
		{"table cells", "<table><tr><td>code</td><td>" + code + "</td></tr></table>", code},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			text := htmlText(tc.in)
			if got := strings.Join(directory.ReplyCodes(text), ","); got != tc.want {
				t.Errorf("ReplyCodes(htmlText(%q)) = %q (text %q), want %q", tc.in, got, text, tc.want)
			}
		})
	}
}

func TestHTMLTextBounded(t *testing.T) {
	t.Parallel()
	in := strings.Repeat("<p>word word word</p>", directory.MaxReplyText)
	if got := htmlText(in); len(got) > directory.MaxReplyText {
		t.Errorf("len(htmlText) = %d, want at most %d", len(got), directory.MaxReplyText)
	}
	if got := directory.ReplyCodes(htmlText("<p>" + code + " " + code + "</p>")); !slices.Equal(got, []string{code}) {
		t.Errorf("codes = %q", got)
	}
}
