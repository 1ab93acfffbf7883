package main

import (
	"strings"
	"testing"
	"time"

	"nhsrelay/relay/queue"
)

func TestWritePostqueue(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 23, 9, 5, 7, 0, time.UTC)
	msgs := []queue.Message{
		{ID: "AB12CD34EF", From: "reception.a81001@nhs.example", Received: at, Size: 2048,
			Recipients: []queue.Recipient{
				{Address: "referrals.rx9@nhs.example", State: queue.Delivered},
				{Address: "admin.b82005@hillside.nhs.example", State: queue.Queued, LastCode: "4.4.1",
					LastError: "connect to mail.hillside.nhs.example:25:\n connection refused"},
				{Address: "gp2.b82005@hillside.nhs.example", State: queue.Queued, LastCode: "4.4.1",
					LastError: "connect to mail.hillside.nhs.example:25: connection refused"},
			}},
		{ID: "ZZ99", From: "", Received: at, Size: 100,
			Recipients: []queue.Recipient{{Address: "x@nhs.example", State: queue.Held, LastError: "no valid S/MIME certificate"}}},
	}
	var b strings.Builder
	writePostqueue(&b, msgs, time.UTC)
	want := `-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------
AB12CD34EF      2048 Mon Nov 23 09:05:07  reception.a81001@nhs.example
(4.4.1 connect to mail.hillside.nhs.example:25: connection refused)
                                          admin.b82005@hillside.nhs.example
                                          gp2.b82005@hillside.nhs.example

ZZ99!            100 Mon Nov 23 09:05:07  MAILER-DAEMON
(no valid S/MIME certificate)
                                          x@nhs.example

-- 3 Kbytes in 2 Requests.
`
	if got := b.String(); got != want {
		t.Errorf("writePostqueue =\n%s\nwant\n%s", got, want)
	}

	b.Reset()
	writePostqueue(&b, nil, time.UTC)
	if got, want := b.String(), "Mail queue is empty\n"; got != want {
		t.Errorf("writePostqueue(empty) = %q, want %q", got, want)
	}
}

func TestDecodeMessages(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`[{"id":"A"}]`, `{"messages":[{"id":"A"}]}`} {
		msgs, err := decodeMessages([]byte(in))
		if err != nil || len(msgs) != 1 || msgs[0].ID != "A" {
			t.Errorf("decodeMessages(%s) = %+v, %v; want one message A", in, msgs, err)
		}
	}
	if _, err := decodeMessages([]byte(`"nope"`)); err == nil {
		t.Errorf("decodeMessages(string) = nil error, want one")
	}
}
