package dsn

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func sample() Report {
	at := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
	return Report{
		ReportingMTA: "relay.nhs.example",
		QueueID:      "18A0000000000000ABCDEFGHIJ",
		ArrivalDate:  at,
		From:         "MAILER-DAEMON@relay.nhs.example",
		To:           "gp.a81001@nhs.example",
		Date:         at.Add(time.Hour),
		MessageID:    "dsn.1@relay.nhs.example",
		Explanation:  "No valid S/MIME certificate for the recipient.",
		Headers:      []byte("From: gp.a81001@nhs.example\r\nSubject: referral\r\n\r\n"),
		Recipients: []Recipient{
			{FinalRecipient: "ward7@trust.nhs.example", Action: Failed, Status: "5.1.1",
				RemoteMTA: "mx.trust.nhs.example", DiagnosticType: "smtp",
				Diagnostic: "550 5.1.1 no such mailbox", LastAttemptDate: at.Add(time.Minute)},
			{FinalRecipient: "cardio@trust.nhs.example", Action: Delayed, Status: "4.4.1",
				LastAttemptDate: at.Add(time.Minute), WillRetryUntil: at.Add(120 * time.Hour)},
		},
	}
}

func equalRecipients(t *testing.T, got, want []Recipient) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("recipients = %d, want %d: %+v", len(got), len(want), got)
	}
	for i := range got {
		g, w := got[i], want[i]
		if !g.LastAttemptDate.Equal(w.LastAttemptDate) || !g.WillRetryUntil.Equal(w.WillRetryUntil) || !g.HeldUntil.Equal(w.HeldUntil) {
			t.Errorf("recipient %d dates = %v/%v/%v, want %v/%v/%v", i, g.LastAttemptDate, g.WillRetryUntil, g.HeldUntil,
				w.LastAttemptDate, w.WillRetryUntil, w.HeldUntil)
		}
		g.LastAttemptDate, g.WillRetryUntil, w.LastAttemptDate, w.WillRetryUntil = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		g.HeldUntil, w.HeldUntil = time.Time{}, time.Time{}
		if g != w {
			t.Errorf("recipient %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	want := sample()
	var buf bytes.Buffer
	if err := Write(&buf, want); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got, err := Parse(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, buf.String())
	}
	if got.ReportingMTA != want.ReportingMTA || got.QueueID != want.QueueID || !got.ArrivalDate.Equal(want.ArrivalDate) {
		t.Errorf("per-message = %q %q %v, want %q %q %v", got.ReportingMTA, got.QueueID, got.ArrivalDate, want.ReportingMTA, want.QueueID, want.ArrivalDate)
	}
	if got.From != want.From || got.To != want.To || got.MessageID != want.MessageID || !got.Date.Equal(want.Date) {
		t.Errorf("message fields = %q %q %q %v", got.From, got.To, got.MessageID, got.Date)
	}
	if !bytes.Equal(got.Headers, want.Headers) {
		t.Errorf("Headers = %q, want %q", got.Headers, want.Headers)
	}
	if !strings.Contains(got.Human, want.Explanation) || !strings.Contains(got.Human, "550 5.1.1 no such mailbox") {
		t.Errorf("Human part lacks the explanation or the diagnostic:\n%s", got.Human)
	}
	equalRecipients(t, got.Recipients, want.Recipients)
}

// A held recipient is not given up on: the human part must not say it
// will not be retried, and the held-until date survives a round trip.
func TestHeldWording(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
	held := Recipient{FinalRecipient: "labs@trust.nhs.example", Action: Delayed, Status: "4.7.5",
		DiagnosticType: "x-nhsrelay", Diagnostic: "certificate for labs@trust.nhs.example expired on 2026-02-01",
		LastAttemptDate: at, HeldUntil: at.Add(120 * time.Hour)}
	final := Recipient{FinalRecipient: "gone@trust.nhs.example", Action: Failed, Status: "5.1.1",
		DiagnosticType: "smtp", Diagnostic: "550 5.1.1 no such mailbox", LastAttemptDate: at}
	for name, tc := range map[string]struct {
		rcpts            []Recipient
		final, heldWords bool
	}{
		"held only":      {[]Recipient{held}, false, true},
		"held and final": {[]Recipient{held, final}, true, true},
		"final only":     {[]Recipient{final}, true, false},
	} {
		t.Run(name, func(t *testing.T) {
			rep := sample()
			rep.Recipients = tc.rcpts
			var buf bytes.Buffer
			if err := Write(&buf, rep); err != nil {
				t.Fatal(err)
			}
			got, err := Parse(&buf)
			if err != nil {
				t.Fatal(err)
			}
			equalRecipients(t, got.Recipients, tc.rcpts)
			if says := strings.Contains(got.Human, "will not be retried"); says != tc.final {
				t.Errorf("human part says \"will not be retried\" = %v, want %v:\n%s", says, tc.final, got.Human)
			}
			if says := strings.Contains(got.Human, "held, not sent (4.7.5)"); says != tc.heldWords {
				t.Errorf("human part names the held recipient as held = %v, want %v:\n%s", says, tc.heldWords, got.Human)
			}
		})
	}
}

func TestWriteShape(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if err := Write(&buf, sample()); err != nil {
		t.Fatalf("Write: %v", err)
	}
	s := buf.String()
	for _, want := range []string{
		"Content-Type: multipart/report; report-type=delivery-status;",
		"Auto-Submitted: auto-replied\r\n",
		"Content-Type: message/delivery-status\r\n",
		"Content-Type: text/rfc822-headers\r\n",
		"Reporting-MTA: dns; relay.nhs.example\r\n",
		"Final-Recipient: rfc822; ward7@trust.nhs.example\r\n",
		"Remote-MTA: dns; mx.trust.nhs.example\r\n",
		"Diagnostic-Code: smtp; 550 5.1.1 no such mailbox\r\n",
		"Subject: Undelivered Mail Returned to Sender\r\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("DSN lacks %q", want)
		}
	}
	if strings.Contains(strings.ReplaceAll(s, "\r\n", ""), "\n") {
		t.Errorf("DSN has a bare LF")
	}
}

func TestWriteCleansHostileText(t *testing.T) {
	t.Parallel()
	r := sample()
	r.Recipients[0].Diagnostic = "550 line one\r\nInjected: header\r\n\r\nbody"
	r.Recipients[0].Diagnostic += strings.Repeat("x", 2000)
	var buf bytes.Buffer
	if err := Write(&buf, r); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if strings.Contains(buf.String(), "\r\nInjected:") {
		t.Errorf("a CRLF in a remote reply reached the DSN as a new field")
	}
	for _, line := range strings.Split(buf.String(), "\r\n") {
		if len(line) > 998 {
			t.Fatalf("line of %d octets, RFC 5322 §2.1.1 allows 998", len(line))
		}
	}
	got, err := Parse(&buf)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if d := got.Recipients[0].Diagnostic; !strings.HasPrefix(d, "550 line one Injected: header body") {
		t.Errorf("Diagnostic = %q", d)
	}
}

func TestWriteRefuses(t *testing.T) {
	t.Parallel()
	for name, edit := range map[string]func(*Report){
		"no recipients":  func(r *Report) { r.Recipients = nil },
		"bad status":     func(r *Report) { r.Recipients[0].Status = "5.1" },
		"status class 3": func(r *Report) { r.Recipients[0].Status = "3.1.1" },
		"bad action":     func(r *Report) { r.Recipients[0].Action = "bounced" },
		"huge headers":   func(r *Report) { r.Headers = bytes.Repeat([]byte("X"), MaxHeaderBytes+1) },
	} {
		t.Run(name, func(t *testing.T) {
			r := sample()
			edit(&r)
			if err := Write(&bytes.Buffer{}, r); err == nil {
				t.Errorf("Write accepted a report with %s", name)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	for name, in := range map[string]string{
		"empty":        "",
		"not a report": "Content-Type: text/plain\r\n\r\nhello\r\n",
		"no status part": "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n" +
			"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--\r\n",
		"bad status": "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n" +
			"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n" +
			"Final-Recipient: rfc822; a@b\r\nAction: failed\r\nStatus: 9.9.9\r\n--b--\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse(strings.NewReader(in)); !errors.Is(err, ErrMalformed) {
				t.Errorf("Parse(%s) error = %v, want ErrMalformed", name, err)
			}
		})
	}
}

// Anything Parse accepts must survive Write and Parse unchanged; anything
// else must fail cleanly, never panic.
func FuzzParse(f *testing.F) {
	var buf bytes.Buffer
	Write(&buf, sample())
	f.Add(buf.String())
	f.Add("Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n" +
		"Final-Recipient: rfc822; a@b\r\nAction: delayed\r\nStatus: 4.4.7\r\n" +
		"Diagnostic-Code: smtp; 451 4.4.7\r\n later\r\n--b\r\nContent-Type: text/rfc822-headers\r\n\r\nX: y\r\n--b--\r\n")
	f.Add("Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\n\r\n--b--")
	f.Add("Content-Type: multipart/report; report-type=delivery-status; boundary=\"\"\r\n\r\n")
	f.Add("\x00\r\n\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Parse(strings.NewReader(s))
		if err != nil {
			return
		}
		a.Date = time.Now().UTC().Truncate(time.Second)
		var out bytes.Buffer
		if err := Write(&out, *a); err != nil {
			t.Fatalf("Write of a parsed report: %v", err)
		}
		b, err := Parse(&out)
		if err != nil {
			t.Fatalf("Parse of our own output: %v\n%q", err, out.String())
		}
		if a.ReportingMTA != b.ReportingMTA || a.QueueID != b.QueueID || !a.ArrivalDate.Equal(b.ArrivalDate) || !bytes.Equal(a.Headers, b.Headers) {
			t.Fatalf("per-message changed: %+v → %+v", a, b)
		}
		equalRecipients(t, b.Recipients, a.Recipients)
	})
}
