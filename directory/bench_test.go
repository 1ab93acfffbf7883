package directory_test

import (
	"fmt"
	"testing"

	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

// BenchmarkImportOrganisations imports a national-sized extract (12,000
// practices) into an empty bbolt-backed directory and reports rows/s.
func BenchmarkImportOrganisations(b *testing.B) {
	orgs := make([]directory.Organisation, 12000)
	for i := range orgs {
		orgs[i] = directory.Organisation{ODS: fmt.Sprintf("P%05d", i), Name: fmt.Sprintf("PRACTICE %d", i),
			Address: []string{"1 HIGH STREET", "LEEDS"}, Postcode: "LS1 4AP", Phone: "0113 496 0000", Kind: "gp-practice"}
	}
	rows := 0
	for b.Loop() {
		b.StopTimer()
		d := directorytest.New(b)
		b.StartTimer()
		if _, err := d.ImportOrganisations(b.Context(), orgs); err != nil {
			b.Fatal(err)
		}
		rows += len(orgs)
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkCheckRecipient is the RCPT-time lookup among 10,000 endpoints.
func BenchmarkCheckRecipient(b *testing.B) {
	eps := make([]directory.Endpoint, 10000)
	for i := range eps {
		eps[i] = directorytest.Verified(fmt.Sprintf("gp%d@nhs.example", i), directory.NextHop{Kind: directory.HopMX})
	}
	d := directorytest.New(b, eps...)
	for b.Loop() {
		if _, err := d.CheckRecipient(b.Context(), "gp5000@nhs.example"); err != nil {
			b.Fatal(err)
		}
	}
}
