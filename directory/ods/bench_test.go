package ods

import (
	"bytes"
	"fmt"
	"testing"
)

// nationalFile generates n realistic epraccur rows: mostly active GP
// practices, some closed, dormant and proposed, names with quotes and commas.
func nationalFile(n int) []byte {
	var b bytes.Buffer
	statuses := []string{"A", "A", "A", "A", "A", "A", "A", "C", "D", "P"}
	settings := []string{"4", "4", "4", "4", "4", "4", "0", "2", "1", "4"}
	for i := range n {
		code := fmt.Sprintf("%c%05d", 'A'+i%26, 10000+i)
		status := statuses[i%len(statuses)]
		closed := ""
		if status == "C" {
			closed = "20240331"
		}
		name := fmt.Sprintf("THE %d HEALTH CENTRE", i)
		if i%50 == 0 {
			name = fmt.Sprintf(`"DR %d & PARTNERS", THE SURGERY`, i)
		}
		b.WriteString(formatRecord([]string{code, name, "Y63", "QHM",
			fmt.Sprintf("%d HIGH STREET", i%300+1), "MARKET PLACE", "STOCKTON-ON-TEES", "CLEVELAND", "",
			fmt.Sprintf("TS%d %dHU", i%30+1, i%9+1), "19740401", closed, status, "B", "16C", "20130401",
			closed, fmt.Sprintf("01642 %06d", i), "", "", "", "0", "", "16C", "", settings[i%len(settings)], ""}))
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

func BenchmarkParse(b *testing.B) {
	const rows = 12000
	data := nationalFile(rows)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		orgs, rejected, err := Parse(bytes.NewReader(data))
		if err != nil || len(rejected) != 0 || len(orgs) != rows {
			b.Fatalf("Parse = %d orgs, %v, %v", len(orgs), rejected, err)
		}
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}
