package audit

import (
	"sort"
	"strconv"
	"strings"
)

// Fields are the facts an event carries for the message timeline
// (audit/timeline), written after the Detail's words as
// `words {key=value key="two words"}`: the account, client IP and size at
// acceptance, the next hop, TLS version and peer certificate of an
// attempt, the remote reply. Keys are lower-case words; values are
// identifiers and protocol text, never content.
type Fields map[string]string

// WithFields returns words followed by f in braces, keys sorted; words
// alone when f is empty.
func WithFields(words string, f Fields) string {
	keys := make([]string, 0, len(f))
	for k, v := range f {
		if validKey(k) && v != "" {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return words
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(words)
	if words != "" {
		b.WriteByte(' ')
	}
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k + "=" + quoteValue(f[k]))
	}
	b.WriteByte('}')
	return b.String()
}

// SplitFields is WithFields reversed: the words and the fields of a
// Detail. A Detail without a well-formed field block is all words.
func SplitFields(detail string) (string, Fields) {
	if !strings.HasSuffix(detail, "}") {
		return detail, nil
	}
	for i := 0; i < len(detail); {
		j := strings.IndexByte(detail[i:], '{')
		if j < 0 {
			break
		}
		start := i + j
		if f, ok := parseFields(detail[start+1 : len(detail)-1]); ok {
			return strings.TrimSuffix(detail[:start], " "), f
		}
		i = start + 1
	}
	return detail, nil
}

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range k {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

func quoteValue(v string) string {
	if strings.ContainsAny(v, " \"{}=\\") || !strconv.CanBackquote(v) {
		return strconv.Quote(v)
	}
	return v
}

// parseFields reads `k=v k2="quoted"` to its end, or fails.
func parseFields(s string) (Fields, bool) {
	f := Fields{}
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || !validKey(s[:eq]) {
			return nil, false
		}
		k := s[:eq]
		s = s[eq+1:]
		var v string
		if strings.HasPrefix(s, `"`) {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				return nil, false
			}
			if v, err = strconv.Unquote(q); err != nil {
				return nil, false
			}
			s = s[len(q):]
		} else {
			end := strings.IndexByte(s, ' ')
			if end < 0 {
				end = len(s)
			}
			v, s = s[:end], s[end:]
			if strings.ContainsAny(v, "\"{}=") {
				return nil, false
			}
		}
		if v == "" { // WithFields never writes an empty value
			return nil, false
		}
		f[k] = v
		if s == "" {
			break
		}
		if s[0] != ' ' {
			return nil, false
		}
		s = s[1:]
	}
	return f, len(f) > 0
}
