package relay_test

import (
	"strings"
	"testing"

	"nhsrelay/audit"
	"nhsrelay/certs/certstest"
	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
	"nhsrelay/relay"
	"nhsrelay/relay/dsn"
	"nhsrelay/relay/relaytest"
)

// withAttachments is a referral with two attached files.
func withAttachments(token string) string {
	return "From: <" + sender + ">\r\nTo: <ward7@hosted.nhs.example>\r\nSubject: referral " + token +
		"\r\nMessage-ID: <" + token + "@practice.nhs.example>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nClinical text " + token +
		"\r\n--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment;\r\n filename=letter.pdf\r\n\r\nJVBERi0=\r\n" +
		"--b1\r\nContent-Type: image/png\r\nContent-Disposition: ATTACHMENT; filename=scan.png\r\n\r\niVBORw0=\r\n--b1--\r\n"
}

func submitDSN(t *testing.T, e *env, to []string, dsnReq []relay.RcptDSN, ret, envid, body string) string {
	t.Helper()
	id, err := e.r.Submit(t.Context(), relay.Envelope{From: sender, Recipients: to, Account: "gp",
		RcptDSN: dsnReq, Ret: ret, EnvID: envid}, strings.NewReader(body))
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	return id
}

// waitIdle waits until the queue is empty: the message and any notice
// about it have been delivered.
func (e *env) waitIdle(t *testing.T) {
	t.Helper()
	waitFor(t, "an empty queue", func() bool { return e.metric(t, "nhsrelay_queue_messages") == 0 })
}

// TestSuccessReceiptFromMailbox: NOTIFY=SUCCESS to a hosted mailbox gives
// the sender a "delivered" DSN naming the recipient, its ORCPT, the
// ENVID, the attachments and size, and the header only (RET=FULL
// notwithstanding); a recipient without NOTIFY gets nothing.
func TestSuccessReceiptFromMailbox(t *testing.T) {
	t.Parallel()
	d := newDir()
	d.add("ward7@hosted.nhs.example", directory.NextHop{Kind: directory.HopHosted})
	d.add("ward8@hosted.nhs.example", directory.NextHop{Kind: directory.HopHosted})
	log := &directorytest.AuditLog{}
	e := start(t, d, func(c *relay.Config) { c.Audit = log })
	body := withAttachments("rcpt1")
	id := submitDSN(t, e, []string{"ward7@hosted.nhs.example", "ward8@hosted.nhs.example"},
		[]relay.RcptDSN{{Notify: []string{"SUCCESS"}, ORcpt: "rfc822;ward7@hosted.nhs.example"}}, "FULL", "ENV-1", body)
	e.waitGone(t, id)
	e.waitIdle(t)
	box := e.waitMailbox(t, sender, 1)
	if len(box) != 1 {
		t.Fatalf("sender's mailbox holds %d messages, want the one receipt", len(box))
	}
	rep := parseDSN(t, box[0])
	if len(rep.Recipients) != 1 || rep.Recipients[0].Action != dsn.Delivered || rep.Recipients[0].Status != "2.0.0" ||
		rep.Recipients[0].FinalRecipient != "ward7@hosted.nhs.example" || rep.Recipients[0].OriginalRecipient != "rfc822;ward7@hosted.nhs.example" {
		t.Errorf("receipt recipients = %+v, want ward7 delivered 2.0.0 with its ORCPT", rep.Recipients)
	}
	if rep.EnvelopeID != "ENV-1" || rep.QueueID != id {
		t.Errorf("receipt ENVID %q queue ID %q, want ENV-1 %s", rep.EnvelopeID, rep.QueueID, id)
	}
	human := strings.Join(strings.Fields(rep.Human), " ")
	if !strings.Contains(human, "Delivered to ward7@hosted.nhs.example at ") || !strings.Contains(human, "2 attachments") {
		t.Errorf("receipt text lacks the slip:\n%s", rep.Human)
	}
	if strings.Contains(string(box[0]), "Clinical text") || strings.Contains(string(box[0]), "JVBERi0") {
		t.Errorf("receipt carries the body (RET=FULL must give headers only):\n%s", box[0])
	}
	var sent, accepted audit.Fields
	for _, ev := range log.Events() {
		_, f := audit.SplitFields(ev.Detail)
		switch {
		case ev.Action == "dsn.sent" && ev.QueueID == id:
			sent = f
		case ev.Action == "accepted" && ev.QueueID == id:
			accepted = f
		}
	}
	if sent["action"] != "delivered" || sent["rcpts"] != "ward7@hosted.nhs.example" {
		t.Errorf("dsn.sent fields = %v", sent)
	}
	if accepted["message_id"] != "<rcpt1@practice.nhs.example>" || accepted["account"] != "gp" || accepted["receipts"] != "ward7@hosted.nhs.example" {
		t.Errorf("accepted fields = %v", accepted)
	}
}

// TestReceiptToNextHop: a next hop that offers DSN is given NOTIFY, ORCPT
// and ENVID (RET=FULL as HDRS) and reports itself, so nothing comes from
// here; one that does not gets the message and the sender a "relayed"
// receipt (RFC 3461 §6.2.2) naming it.
func TestReceiptToNextHop(t *testing.T) {
	t.Parallel()
	for _, offers := range []bool{true, false} {
		name := map[bool]string{true: "offers DSN", false: "no DSN"}[offers]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srvTLS, pool := certstest.ServerTLS(t)
			sink := relaytest.Start(t, relaytest.Options{TLS: srvTLS, RequireTLS: true, DSN: offers})
			d := newDir()
			d.add("ward7@trust.nhs.example", directory.NextHop{Kind: directory.HopHost, Host: sink.Addr})
			log := &directorytest.AuditLog{}
			e := start(t, d, func(c *relay.Config) { c.RootCAs = pool; c.Audit = log })
			id := submitDSN(t, e, []string{"ward7@trust.nhs.example"},
				[]relay.RcptDSN{{Notify: []string{"SUCCESS", "FAILURE"}, ORcpt: "rfc822;ward7@trust.nhs.example"}}, "FULL", "ENV-2", message("x", "hop"))
			m := sink.WaitMessages(t, 1)[0]
			e.waitGone(t, id)
			e.waitIdle(t)
			box := e.mailbox(t, sender)
			if offers {
				if m.Ret != "HDRS" || m.EnvID != "ENV-2" || m.Notify["ward7@trust.nhs.example"] != "SUCCESS,FAILURE" ||
					m.ORcpt["ward7@trust.nhs.example"] != "RFC822;ward7@trust.nhs.example" {
					t.Errorf("next hop got RET %q ENVID %q NOTIFY %v ORCPT %v", m.Ret, m.EnvID, m.Notify, m.ORcpt)
				}
				if len(box) != 0 {
					t.Errorf("%d notices to the sender; the next hop reports itself", len(box))
				}
			} else {
				rep := parseDSN(t, e.waitMailbox(t, sender, 1)[0])
				if r := rep.Recipients[0]; r.Action != dsn.Relayed || r.RemoteMTA != "127.0.0.1" {
					t.Errorf("receipt = %+v, want relayed by 127.0.0.1", r)
				}
				if !strings.Contains(rep.Human, "does not send delivery receipts") {
					t.Errorf("relayed receipt text:\n%s", rep.Human)
				}
			}
			for _, ev := range log.Events() {
				if ev.Action != "delivered" || ev.QueueID != id {
					continue
				}
				_, f := audit.SplitFields(ev.Detail)
				if f["tls"] == "" || !strings.Contains(f["peer"], "sha256=") || !strings.HasPrefix(f["reply"], "250") || f["rcpt"] != "ward7@trust.nhs.example" {
					t.Errorf("delivered event lacks the attempt's facts: %v", f)
				}
			}
		})
	}
}

// TestNotifyNeverIsSilent: NOTIFY=NEVER suppresses the failure notice
// too (RFC 3461 §4.1); the operator still sees it in the audit log.
func TestNotifyNeverIsSilent(t *testing.T) {
	t.Parallel()
	sink, c := tlsSink(t)
	sink.SetRcpt(func(string) error { return relaytest.Reply(550, 1, 1, "no such mailbox") })
	d := newDir()
	d.add("ward7@trust.nhs.example", directory.NextHop{Kind: directory.HopHost, Host: sink.Addr})
	log := &directorytest.AuditLog{}
	e := start(t, d, func(cfg *relay.Config) { cfg.RootCAs = c.RootCAs; cfg.Audit = log })
	id := submitDSN(t, e, []string{"ward7@trust.nhs.example"}, []relay.RcptDSN{{Notify: []string{"NEVER"}}}, "", "", message("x", "never"))
	e.waitGone(t, id)
	e.waitIdle(t)
	if n := len(e.mailbox(t, sender)); n != 0 {
		t.Errorf("%d notices to a sender who asked for none", n)
	}
	found := false
	for _, ev := range log.Events() {
		found = found || ev.Action == "dsn.suppressed" && ev.QueueID == id
	}
	if !found {
		t.Errorf("no dsn.suppressed audit event; actions %v", log.Actions())
	}
}
