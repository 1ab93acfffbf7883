package directory

import (
	"errors"
	"fmt"
	"strings"
)

// Limits from RFC 5321 §4.5.3.1.
const (
	maxLocalPart = 64  // §4.5.3.1.1
	maxDomain    = 255 // §4.5.3.1.2
	maxPath      = 256 // §4.5.3.1.3, including the angle brackets
	maxLabel     = 63  // RFC 1035 §2.3.4
)

// NormaliseAddress checks s as an endpoint address, a mailbox
// ("local@domain") or a whole domain, and returns it with the domain in
// lower case. Surrounding space, angle brackets and a "mailto:" prefix are
// removed. The local part keeps its case (RFC 5321 §2.4: it is the receiving
// host's to interpret); lookups fold it.
func NormaliseAddress(s string) (string, error) {
	a := strings.TrimSpace(s)
	if len(a) >= 2 && a[0] == '<' && a[len(a)-1] == '>' {
		a = a[1 : len(a)-1]
	}
	if len(a) >= 7 && strings.EqualFold(a[:7], "mailto:") {
		a = a[7:]
	}
	if a == "" {
		return "", errors.New("address is empty")
	}
	at := strings.LastIndexByte(a, '@')
	if at < 0 {
		dom, err := normaliseDomain(a)
		if err != nil {
			return "", fmt.Errorf("domain %q: %w", clip(a), err)
		}
		return dom, nil
	}
	local, dom := a[:at], a[at+1:]
	if err := checkLocalPart(local); err != nil {
		return "", fmt.Errorf("address %q: local part %w", clip(a), err)
	}
	dom, err := normaliseDomain(dom)
	if err != nil {
		return "", fmt.Errorf("address %q: domain %w", clip(a), err)
	}
	out := local + "@" + dom
	if len(out)+2 > maxPath {
		// RFC 5321 §4.5.3.1.3: a path is at most 256 octets "including the
		// punctuation and element separators" (the angle brackets).
		return "", fmt.Errorf("address %q: longer than %d characters", clip(a), maxPath-2)
	}
	return out, nil
}

// checkLocalPart accepts a Dot-string (RFC 5321 §4.1.2): atoms of atext
// (RFC 5322 §3.2.3) separated by single dots.
// QUIRK: quoted local parts ("a b"@x) are refused; no NHS mailbox uses them
// and they are a common source of parser disagreements.
func checkLocalPart(l string) error {
	switch {
	case l == "":
		return errors.New("is empty")
	case len(l) > maxLocalPart:
		return fmt.Errorf("is longer than %d characters", maxLocalPart)
	case l[0] == '.' || l[len(l)-1] == '.':
		return errors.New("starts or ends with a dot")
	case strings.Contains(l, ".."):
		return errors.New("has two dots in a row")
	}
	for i := 0; i < len(l); i++ {
		if c := l[i]; c != '.' && !isAtext(c) {
			return fmt.Errorf("has a character not allowed in a mailbox name: %q", rune(c))
		}
	}
	return nil
}

// isAtext reports whether c is RFC 5322 §3.2.3 atext.
func isAtext(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// normaliseDomain checks d as an RFC 5321 §4.1.2 Domain of at least two
// labels and returns it in lower case.
// QUIRK: address literals ([192.0.2.1]) and U-labels are refused: a
// directory endpoint is a DNS name, internationalised ones in A-label form.
func normaliseDomain(d string) (string, error) {
	switch {
	case d == "":
		return "", errors.New("is empty")
	case len(d) > maxDomain:
		return "", fmt.Errorf("is longer than %d characters", maxDomain)
	case d[0] == '[':
		return "", errors.New("is an address literal; use a domain name")
	}
	d = strings.ToLower(d)
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return "", errors.New("must contain a dot (a fully qualified name)")
	}
	for _, l := range labels {
		// sub-domain = Let-dig [Ldh-str]
		switch {
		case l == "":
			return "", errors.New("has an empty label (two dots in a row, or a dot at an end)")
		case len(l) > maxLabel:
			return "", fmt.Errorf("has a label longer than %d characters", maxLabel)
		case l[0] == '-' || l[len(l)-1] == '-':
			return "", errors.New("has a label that starts or ends with a hyphen")
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", fmt.Errorf("has a character not allowed in a domain name: %q", rune(c))
			}
		}
	}
	if tld := labels[len(labels)-1]; strings.Trim(tld, "0123456789") == "" {
		return "", errors.New("ends in an all-numeric label (an IP address is not a domain)")
	}
	return d, nil
}

// NormaliseFax returns a fax number in E.164 form ("+441632960001"). It
// accepts the common UK ways of writing one: "01632 960001",
// "+44 (0)1632 960001", "00441632960001", "tel:+44-1632-960001",
// "(01632) 960001". Numbers outside the UK need their country code.
func NormaliseFax(s string) (string, error) {
	n := strings.TrimSpace(s)
	for _, p := range []string{"tel:", "fax:"} {
		if len(n) >= len(p) && strings.EqualFold(n[:len(p)], p) {
			n = n[len(p):]
		}
	}
	if n == "" {
		return "", errors.New("fax number is empty")
	}
	// "(0)" is the UK trunk prefix written after the country code.
	n = strings.Replace(n, "(0)", "", 1)
	var b strings.Builder
	for i, r := range n {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && i == 0:
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '/' || r == '(' || r == ')' || r == '\u00a0':
		default:
			return "", fmt.Errorf("fax number %q: unexpected %q (only digits, spaces, - . / ( ) and a leading +)", clip(s), r)
		}
	}
	d := b.String()
	switch {
	case strings.HasPrefix(d, "+"):
		d = d[1:]
	case strings.HasPrefix(d, "00"):
		d = d[2:] // international prefix dialled from the UK
	case strings.HasPrefix(d, "0"):
		d = "44" + d[1:] // UK national format
	case d == "":
		return "", fmt.Errorf("fax number %q has no digits", clip(s))
	default:
		return "", fmt.Errorf("fax number %q: start with 0 (UK) or + and the country code", clip(s))
	}
	if strings.HasPrefix(d, "440") {
		d = "44" + d[3:] // "+44 01632 ...": the trunk 0 written after the country code
		if strings.HasPrefix(d, "440") {
			return "", fmt.Errorf("fax number %q: more than one 0 after the country code", clip(s))
		}
	}
	if d == "" || d[0] == '0' {
		return "", fmt.Errorf("fax number %q: a country code cannot start with 0", clip(s))
	}
	if strings.HasPrefix(d, "44") {
		// UK national significant numbers are 9 or 10 digits (Ofcom numbering plan).
		if nsn := len(d) - 2; nsn < 9 || nsn > 10 {
			return "", fmt.Errorf("fax number %q: a UK number has 10 or 11 digits with the leading 0, this has %d", clip(s), nsn+1)
		}
	} else if len(d) < 7 || len(d) > 15 {
		// ITU-T E.164 §6.1: at most 15 digits including the country code.
		return "", fmt.Errorf("fax number %q: an international number has 7 to 15 digits, this has %d", clip(s), len(d))
	}
	return "+" + d, nil
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

// normaliseODS upper-cases and checks an ODS code: 3 to 10 letters and digits.
func normaliseODS(s string) (string, error) {
	c := strings.ToUpper(strings.TrimSpace(s))
	if c == "" {
		return "", errors.New("ODS code is empty")
	}
	if len(c) < 3 || len(c) > 10 {
		return "", fmt.Errorf("ODS code %q must be 3 to 10 letters and digits", clip(s))
	}
	for i := 0; i < len(c); i++ {
		if ch := c[i]; !(ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9') {
			return "", fmt.Errorf("ODS code %q must be 3 to 10 letters and digits", clip(s))
		}
	}
	return c, nil
}
