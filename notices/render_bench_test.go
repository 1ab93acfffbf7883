package notices

import (
	"bytes"
	"testing"
	"time"

	"nhsrelay/notices/dkim"
)

// BenchmarkRenderSign is one notice email made (text, HTML, iCalendar,
// MIME) and DKIM-signed, as dispatch and the relay do it.
func BenchmarkRenderSign(b *testing.B) {
	ts, err := loadTemplates(nil)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Date(2027, 3, 29, 9, 30, 0, 0, london)
	n := Notice{ID: "abc", Reference: "R", Organisation: "A81001", Kind: KindNew, Appointment: Appointment{
		PatientName: "Ada Lovelace", Email: "ada@example.org", Start: start, End: start.Add(30 * time.Minute),
		TimeZone: "Europe/London", Location: "Riverside Medical Practice, 1 River Street, Leeds", Clinic: "Diabetes review",
		Instructions: "Please bring your meter.", ContactPhone: "0113 496 0000"}}
	info := RenderInfo{OrgName: "Riverside Medical Practice", From: "appointments@riverside.nhs.example", Hostname: "relay.nhs.example", Now: time.Now()}
	for _, kind := range []string{"rsa", "ed25519"} {
		b.Run(kind, func(b *testing.B) {
			k, _ := dkim.GenerateKey(kind)
			s, _ := dkim.New([]dkim.Key{{Domain: "riverside.nhs.example", Selector: "s", Signer: k}})
			var msg, out bytes.Buffer
			for b.Loop() {
				msg.Reset()
				out.Reset()
				if err := renderEmail(&msg, ts.def, n, info); err != nil {
					b.Fatal(err)
				}
				if err := s.SignBytes(&out, msg.Bytes()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "emails/s")
		})
	}
}
