package challengereply

import (
	"html"
	"strings"
	"unicode"

	"nhsrelay/directory"
)

// blockTags end a line of text; cellTags separate words.
var (
	blockTags = map[string]bool{"br": true, "p": true, "div": true, "tr": true, "li": true, "hr": true,
		"h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true, "table": true,
		"ul": true, "ol": true, "dl": true, "dt": true, "dd": true, "pre": true, "body": true}
	cellTags = map[string]bool{"td": true, "th": true}
	// skipTags hold no text a reader sees.
	skipTags = map[string]bool{"script": true, "style": true, "head": true, "title": true, "template": true}
)

// htmlText is the text a person reads in an HTML-only reply, one line per
// block, for ReplyCodes: what a blockquote holds is quoted (RFC 2854
// replies quote in one, as "> " quotes plain text) and left out; so are
// scripts, styles and comments. Whitespace collapses as a browser shows
// it, except in <pre>: a source line break inside the quoted
// "Verification code: ..." line must not make the code look typed.
// Format characters (zero-width spaces) are dropped for the same reason.
// At most directory.MaxReplyText bytes come out; one pass, no
// backtracking.
func htmlText(s string) string {
	var out strings.Builder
	var skip string // element whose content is skipped
	quote, pre := 0, 0
	for i := 0; i < len(s) && out.Len() < directory.MaxReplyText; {
		if s[i] != '<' {
			j := strings.IndexByte(s[i:], '<')
			if j < 0 {
				j = len(s) - i
			}
			if skip == "" && quote == 0 {
				writeText(&out, html.UnescapeString(s[i:i+j]), pre > 0)
			}
			i += j
			continue
		}
		if strings.HasPrefix(s[i:], "<!--") {
			end := strings.Index(s[i+4:], "-->")
			if end < 0 {
				break
			}
			i += 4 + end + 3
			continue
		}
		end := strings.IndexByte(s[i:], '>')
		if end < 0 {
			break // an unfinished tag ends the text
		}
		tag := s[i+1 : i+end]
		i += end + 1
		closing := strings.HasPrefix(tag, "/")
		selfClosing := strings.HasSuffix(tag, "/")
		name := strings.TrimPrefix(tag, "/")
		if k := strings.IndexAny(name, " \t\r\n/"); k >= 0 {
			name = name[:k]
		}
		name = strings.ToLower(name)
		if skip != "" {
			if closing && name == skip {
				skip = ""
			}
			continue
		}
		switch {
		case skipTags[name] && !closing && !selfClosing:
			skip = name
		case name == "blockquote":
			if closing {
				quote = max(quote-1, 0)
			} else if !selfClosing {
				quote++
			}
			out.WriteByte('\n')
		case name == "pre":
			if closing {
				pre = max(pre-1, 0)
			} else if !selfClosing {
				pre++
			}
			out.WriteByte('\n')
		case blockTags[name]:
			out.WriteByte('\n')
		case cellTags[name]:
			out.WriteByte(' ')
		}
	}
	t := out.String()
	if len(t) > directory.MaxReplyText {
		t = t[:directory.MaxReplyText]
	}
	return t
}

// writeText adds text: each run of white space one space (all of it, in
// <pre>, kept as line breaks and spaces), format characters dropped.
func writeText(out *strings.Builder, text string, pre bool) {
	space := false
	for _, r := range text {
		switch {
		case unicode.Is(unicode.Cf, r):
			continue
		case pre && (r == '\n' || r == '\r'):
			if r == '\n' {
				out.WriteByte('\n')
			}
			space = false
			continue
		case unicode.IsSpace(r): // includes U+00A0, &nbsp;
			if !space {
				out.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		out.WriteRune(r)
	}
}
