package dsn

import (
	"bytes"
	"os"
	"testing"
)

// thunderbird-mdn.eml is shaped as Thunderbird 128 writes a return
// receipt (RFC 8098 §3).
func TestParseThunderbirdMDN(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/thunderbird-mdn.eml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseMDN(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("ParseMDN: %v", err)
	}
	want := MDN{ReportingUA: "nhs.example; Thunderbird 128.5.0", FinalRecipient: "referrals.rx9@nhs.example",
		OriginalMessageID: "<e2e-token@nhs.example>", Disposition: "manual-action/MDN-sent-manually; displayed"}
	if *m != want {
		t.Errorf("ParseMDN = %+v, want %+v", *m, want)
	}
	if got := m.DispositionType(); got != "displayed" {
		t.Errorf("DispositionType = %q, want displayed", got)
	}
	var buf bytes.Buffer
	Write(&buf, sample())
	if _, err := ParseMDN(&buf); err == nil {
		t.Error("ParseMDN accepted a delivery-status report")
	}
}

// Hostile input fails cleanly, never panics.
func FuzzParseMDN(f *testing.F) {
	data, _ := os.ReadFile("testdata/thunderbird-mdn.eml")
	f.Add(data)
	f.Add([]byte("Content-Type: multipart/report; report-type=disposition-notification; boundary=x\r\n\r\n--x\r\nContent-Type: message/disposition-notification\r\n\r\nFinal-Recipient: ;\r\n--x--\r\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMDN(bytes.NewReader(b))
		if err == nil && (m.FinalRecipient == "" || m.DispositionType() == "") {
			t.Fatalf("accepted an MDN without Final-Recipient or disposition: %+v", m)
		}
	})
}
