package expiry

import (
	"net/mail"
	"strings"
	"testing"
	"time"

	"nhsrelay/directory"
)

func TestExpirySummaryMail(t *testing.T) {
	t.Parallel()
	rep := directory.ExpiryReport{Checked: 3,
		Warnings:  []directory.ExpiryNotice{{Address: "a@nhs.example"}},
		Suspended: []directory.ExpiryNotice{{Address: "b@nhs.example"}},
		Lines: []string{"a@nhs.example: verification expires in 10 days",
			"b@nhs.example: suspended\r\n.\r\nRCPT TO:<x@evil.example>"}} // hostile: must stay one line
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	raw, err := summaryMail("verification@nhs.example", "admin@nhs.example",
		summary{dir: rep, certLines: []string{"tls-server certificate relay.nhs.example (/etc/tls.crt): expires in 3 days\n.\n"}}, now)
	if err != nil {
		t.Fatal(err)
	}
	msg := string(raw)
	if strings.Contains(strings.ReplaceAll(msg, "\r\n", ""), "\n") || strings.Contains(strings.ReplaceAll(msg, "\r\n", ""), "\r") {
		t.Errorf("message has a bare CR or LF:\n%q", msg)
	}
	if strings.Contains(msg, "\r\n.\r\n") {
		t.Errorf("message holds a line with a lone dot:\n%q", msg)
	}
	m, err := mail.ReadMessage(strings.NewReader(msg))
	if err != nil {
		t.Fatalf("not a valid message: %v", err)
	}
	for h, want := range map[string]string{
		"To": "<admin@nhs.example>", "Subject": "nhsrelay expiry summary 2026-11-23",
		"Auto-Submitted": "auto-generated", "Content-Type": "text/plain; charset=utf-8",
	} {
		if got := m.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if _, err := m.Header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	for _, want := range []string{"3 verified endpoints checked: 1 due soon, 1 suspended.",
		"Certificates this server uses: 1 need attention.", "tls-server certificate relay.nhs.example (/etc/tls.crt): expires in 3 days"} {
		if !strings.Contains(msg, want) {
			t.Errorf("no line %q:\n%s", want, msg)
		}
	}
}
