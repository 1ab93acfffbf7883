package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"nhsrelay/directory/api"
)

func TestAccountParse(t *testing.T) {
	t.Parallel()
	a := &accountCmd{}
	if _, err := a.parse("add", []string{"ward7", "-owns", "a@nhs.example", "b@nhs.example", "-org", "a81001", "-note", "PAS"}); err != nil {
		t.Fatal(err)
	}
	if a.user != "ward7" || !slices.Equal(a.owns, multiFlag{"a@nhs.example", "b@nhs.example"}) || a.org != "a81001" || a.note != "PAS" {
		t.Errorf("add parsed = %+v", a)
	}
	a = &accountCmd{}
	if _, err := a.parse("owns", []string{"ward7", "+new@nhs.example", "-old@nhs.example"}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.add, []string{"new@nhs.example"}) || !slices.Equal(a.remove, []string{"old@nhs.example"}) {
		t.Errorf("owns parsed add %v remove %v", a.add, a.remove)
	}
	for _, tc := range []struct {
		cmd  string
		args []string
		want string
	}{
		{"owns", []string{"ward7"}, "at least one"},
		{"owns", []string{"ward7", "new@nhs.example"}, "+ADDR"},
		{"owns", []string{"ward7", "+"}, "+ADDR"},
		{"show", nil, "want USER"},
		{"show", []string{"a", "b"}, "want USER"},
		{"list", []string{"x"}, "takes no arguments"},
		{"frob", nil, "unknown account command"},
	} {
		if _, err := (&accountCmd{}).parse(tc.cmd, tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parse(%s %q) = %v, want an error with %q", tc.cmd, tc.args, err, tc.want)
		}
	}
}

func TestWriteAccounts(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	var b strings.Builder
	writeAccounts(&b, []api.Account{
		{Username: "riverside", ODS: "A81001", Addresses: []string{"reception.a81001@nhs.example"}, Created: at},
		{Username: "ward7", ODS: "A81001", Addresses: []string{"w7@nhs.example", "w7b@nhs.example"}, Disabled: true,
			DisabledReason: "left", Receipts: "never", Note: "PAS"},
	})
	want := `USER       ODS     STATE     RECEIPTS    ADDRESSES                        NOTE
riverside  A81001  active    on-request  reception.a81001@nhs.example     -
ward7      A81001  disabled  never       w7@nhs.example, w7b@nhs.example  PAS
-- 2 account(s)
`
	if got := b.String(); got != want {
		t.Errorf("writeAccounts =\n%s\nwant\n%s", got, want)
	}
	b.Reset()
	writeAccounts(&b, nil)
	if b.String() != "no accounts\n" {
		t.Errorf("writeAccounts(none) = %q", b.String())
	}
}
