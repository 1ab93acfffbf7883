package dsn

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// receipt is a success report (RFC 3461 §6.2.2): one recipient delivered
// into its mailbox, one relayed to a next hop that does not offer DSN,
// with the sender's ENVID and ORCPT.
func receipt() Report {
	r := sample()
	at := r.ArrivalDate
	r.EnvelopeID = "QQ314159"
	r.Explanation = "Delivered to ward7@trust.nhs.example at 09:31 UTC; 3 attachments, 1.2 MB."
	r.Recipients = []Recipient{
		{OriginalRecipient: "rfc822;ward7@trust.nhs.example", FinalRecipient: "ward7@trust.nhs.example",
			Action: Delivered, Status: "2.0.0", LastAttemptDate: at.Add(time.Minute)},
		{FinalRecipient: "cardio@trust.nhs.example", Action: Relayed, Status: "2.0.0",
			RemoteMTA: "mx.trust.nhs.example", DiagnosticType: "smtp", Diagnostic: "250 2.0.0 Ok: queued as 4F1",
			LastAttemptDate: at.Add(time.Minute)},
	}
	return r
}

func TestReceiptRoundTrip(t *testing.T) {
	t.Parallel()
	want := receipt()
	var buf bytes.Buffer
	if err := Write(&buf, want); err != nil {
		t.Fatalf("Write: %v", err)
	}
	s := buf.String()
	for _, w := range []string{"Subject: Delivery receipt: message relayed\r\n", "Original-Envelope-Id: QQ314159\r\n",
		"Original-Recipient: rfc822;ward7@trust.nhs.example\r\n", "Action: delivered\r\n", "Action: relayed\r\n"} {
		if !strings.Contains(s, w) {
			t.Errorf("receipt lacks %q:\n%s", w, s)
		}
	}
	got, err := Parse(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got.EnvelopeID != want.EnvelopeID || !strings.Contains(got.Human, "delivery receipt") || !strings.Contains(got.Human, want.Explanation) {
		t.Errorf("Parse: ENVID %q, human part:\n%s", got.EnvelopeID, got.Human)
	}
	equalRecipients(t, got.Recipients, want.Recipients)
}

// TestReceiptPythonParses has Python's email package, which we did not
// write, read the receipt: a multipart/report whose second part is
// message/delivery-status with one group per recipient.
func TestReceiptPythonParses(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if err := Write(&buf, receipt()); err != nil {
		t.Fatal(err)
	}
	out := pythonDSN(t, buf.Bytes())
	want := "multipart/report delivery-status\n" +
		"per-message Reporting-MTA=dns; relay.nhs.example Original-Envelope-Id=QQ314159\n" +
		"rcpt rfc822; ward7@trust.nhs.example delivered 2.0.0 rfc822;ward7@trust.nhs.example\n" +
		"rcpt rfc822; cardio@trust.nhs.example relayed 2.0.0 None\n" +
		"part text/rfc822-headers\n"
	if out != want {
		t.Errorf("python3 read:\n%s\nwant:\n%s", out, want)
	}
}

// pythonDSN prints what python3's email parser finds in a DSN.
func pythonDSN(t *testing.T, msg []byte) string {
	t.Helper()
	const script = `
import sys, email
from email import policy
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.compat32)
print(m.get_content_type(), m.get_param("report-type"))
parts = m.get_payload()
st = parts[1]
assert st.get_content_type() == "message/delivery-status", st.get_content_type()
groups = st.get_payload()
print("per-message", "Reporting-MTA=" + groups[0]["Reporting-MTA"], "Original-Envelope-Id=" + str(groups[0]["Original-Envelope-Id"]))
for g in groups[1:]:
    print("rcpt", g["Final-Recipient"], g["Action"], g["Status"], g["Original-Recipient"])
print("part", parts[2].get_content_type())
`
	cmd := exec.Command("python3", "-c", script)
	cmd.Stdin = bytes.NewReader(msg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	return string(out)
}
