package smtpd

import (
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"nhsrelay/relay"
)

// A notice account (issue 11) sends to patients' own addresses as notice
// mail; never to a directory endpoint. A clinical account still cannot
// send outside the directory (TestNoOpenRelay).
func TestNoticeAccount(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	c, err := smtp.DialStartTLS(ts.sub, ts.tlsConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", noticeUser, pass)); err != nil {
		t.Fatal(err)
	}
	if _, err := send(c, noticeFrom, []string{external}, message(noticeFrom)); err != nil {
		t.Fatalf("notice to a patient's address: %v", err)
	}
	msgs := ts.queue.all()
	if len(msgs) != 1 || msgs[0].env.Kind != relay.KindNotice || msgs[0].env.Recipients[0] != external {
		t.Fatalf("queued %+v, want one notice-kind message to %s", msgs, external)
	}
	for _, to := range []string{hosted, remote, suspended} {
		_, err := send(c, noticeFrom, []string{to}, message(noticeFrom))
		se := wantReply(t, err, 550, "5.7.1")
		if se.Message == "" {
			t.Fatal("refusal without words")
		}
	}
	_, err = send(c, noticeFrom, []string{"someone@localhost"}, message(noticeFrom))
	wantReply(t, err, 501, "5.1.3")
	// The clinical account's mail is still clinical.
	cc := ts.submitClient(t)
	if _, err := send(cc, own, []string{remote}, message(own)); err != nil {
		t.Fatal(err)
	}
	if all := ts.queue.all(); all[len(all)-1].env.Kind != relay.KindClinical {
		t.Fatalf("clinical account's message has kind %q", all[len(all)-1].env.Kind)
	}
}
