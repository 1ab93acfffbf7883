package directory_test

import (
	"regexp"
	"strings"
	"testing"

	"nhsrelay/directory"
)

func TestNormaliseFax(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"01632 960001", "+441632960001"},
		{"+44 (0)1632 960001", "+441632960001"},
		{"00441632960001", "+441632960001"},
		{"tel:+44-1632-960001", "+441632960001"},
		{"TEL:+44-1632-960001", "+441632960001"},
		{"fax:01632960001", "+441632960001"},
		{"(01632) 960001", "+441632960001"},
		{"+44 01632 960001", "+441632960001"},
		{"0113 496 0000", "+441134960000"},
		{"020 7946 0000", "+442079460000"},
		{"016977 4567", "+44169774567"}, // 9-digit national significant number
		{" +44\u00a01632\u00a0960001 ", "+441632960001"},
		{"+353 1 234 5678", "+35312345678"},
		{"001 202 555 0143", "+12025550143"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := directory.NormaliseFax(tc.in)
			if err != nil || got != tc.want {
				t.Fatalf("NormaliseFax(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
	for _, tc := range []struct{ in, wantErr string }{
		{"", "empty"},
		{"tel:", "empty"},
		{"1632 960001", "start with 0"},
		{"01632 9600", "10 or 11 digits"},
		{"01632 9600011", "10 or 11 digits"},
		{"01632 960001 ext 12", "unexpected"},
		{"+44 1632 96000x", "unexpected"},
		{"0+441632960001", "unexpected"},
		{"+0441632960001", "cannot start with 0"},
		{"+44 00 1632 960001", "more than one 0"},
		{"+1 234", "7 to 15"},
		{"+1234567890123456", "7 to 15"},
		{"()-", "no digits"},
	} {
		t.Run("bad/"+tc.in, func(t *testing.T) {
			got, err := directory.NormaliseFax(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("NormaliseFax(%q) = %q, %v; want error containing %q", tc.in, got, err, tc.wantErr)
			}
		})
	}
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// Accepted input must come out as E.164 and normalise to itself; the rest
// must fail cleanly, never panic.
func FuzzNormaliseFax(f *testing.F) {
	for _, s := range []string{"01632 960001", "+44 (0)1632 960001", "00441632960001", "tel:+44-1632-960001",
		"", "+", "00", "0", "+44(0)(0)1632", "tel:tel:0", "+44 00 1632 960001", "\x00", "０１６３２", "+٤٤"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := directory.NormaliseFax(s)
		if err != nil {
			return
		}
		if !e164.MatchString(n) {
			t.Fatalf("NormaliseFax(%q) = %q, not E.164", s, n)
		}
		if again, err := directory.NormaliseFax(n); err != nil || again != n {
			t.Fatalf("NormaliseFax(%q) = %q, then %q, %v; want it unchanged", s, n, again, err)
		}
	})
}

func TestNormaliseAddress(t *testing.T) {
	t.Parallel()
	long63 := strings.Repeat("a", 63)
	for _, tc := range []struct{ in, want string }{
		{"gp.a81001@NHS.Example", "gp.a81001@nhs.example"},
		{"GP.A81001@nhs.example", "GP.A81001@nhs.example"}, // local part keeps its case
		{"  <gp@nhs.example>  ", "gp@nhs.example"},
		{"mailto:gp@nhs.example", "gp@nhs.example"},
		{"MAILTO:gp@nhs.example", "gp@nhs.example"},
		{"NHS.Example", "nhs.example"},
		{"x-ray+results@trust-1.nhs.example", "x-ray+results@trust-1.nhs.example"},
		{strings.Repeat("l", 64) + "@nhs.example", strings.Repeat("l", 64) + "@nhs.example"},
		{long63 + "." + long63 + ".nhs.example", long63 + "." + long63 + ".nhs.example"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := directory.NormaliseAddress(tc.in)
			if err != nil || got != tc.want {
				t.Fatalf("NormaliseAddress(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
	for _, tc := range []struct{ in, wantErr string }{
		{"", "empty"},
		{"<>", "empty"},
		{"@nhs.example", "local part is empty"},
		{"gp@", "domain is empty"},
		{strings.Repeat("l", 65) + "@nhs.example", "longer than 64"},                              // RFC 5321 §4.5.3.1.1
		{"gp@" + strings.Repeat(long63+".", 4) + "example", "longer than 255"},                    // §4.5.3.1.2
		{strings.Repeat("l", 64) + "@" + strings.Repeat(long63+".", 3) + "ab", "longer than 254"}, // §4.5.3.1.3
		{"gp@" + strings.Repeat("a", 64) + ".example", "label longer than 63"},
		{".gp@nhs.example", "starts or ends with a dot"},
		{"g..p@nhs.example", "two dots"},
		{`"g p"@nhs.example`, "not allowed in a mailbox"},
		{"g p@nhs.example", "not allowed in a mailbox"},
		{"gp@nhs", "must contain a dot"},
		{"gp@nhs..example", "empty label"},
		{"gp@-nhs.example", "hyphen"},
		{"gp@nhs_x.example", "not allowed in a domain"},
		{"gp@[192.0.2.1]", "address literal"},
		{"gp@192.0.2.1", "all-numeric"},
		{"gp@nhs.example.", "empty label"},
		{"gp@nhs.éxample", "not allowed in a domain"},
		{"a@b@nhs.example", "not allowed in a mailbox"},
		{"gp\x00@nhs.example", "not allowed in a mailbox"},
	} {
		t.Run("bad/"+tc.in, func(t *testing.T) {
			got, err := directory.NormaliseAddress(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("NormaliseAddress(%q) = %q, %v; want error containing %q", tc.in, got, err, tc.wantErr)
			}
		})
	}
}

// Accepted input must normalise to itself and respect RFC 5321's limits.
func FuzzNormaliseAddress(f *testing.F) {
	for _, s := range []string{"gp.a81001@nhs.example", "NHS.Example", "<mailto:gp@nhs.example>", "",
		"@", "a@b", "a@b.c", `"a"@b.c`, "a@[1.2.3.4]", "mailto:", "<<a@b.c>>", "a@b.c.", "a..b@c.d", "\xff@x.y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := directory.NormaliseAddress(s)
		if err != nil {
			return
		}
		local, domain, isMailbox := strings.Cut(a, "@")
		if !isMailbox {
			local, domain = "", a
		}
		if len(local) > 64 || len(domain) > 255 || len(a) > 254 || domain != strings.ToLower(domain) || strings.Contains(domain, "@") {
			t.Fatalf("NormaliseAddress(%q) = %q, breaks RFC 5321 limits or case", s, a)
		}
		if again, err := directory.NormaliseAddress(a); err != nil || again != a {
			t.Fatalf("NormaliseAddress(%q) = %q, then %q, %v; want it unchanged", s, a, again, err)
		}
	})
}
