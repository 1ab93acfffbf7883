package notices_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"nhsrelay/notices"
	"nhsrelay/notices/boltstore"
	"nhsrelay/relay"
)

type discardQueue struct{}

func (discardQueue) Submit(context.Context, relay.Envelope, io.Reader) (string, error) {
	return "Q", nil
}

// BenchmarkAccept measures notices taken into the durable store (bbolt,
// fsynced, group commit) from parallel callers, without HTTP.
func BenchmarkAccept(b *testing.B) {
	st, err := boltstore.Open(filepath.Join(b.TempDir(), "notices.db"), bytes.Repeat([]byte{1}, 32))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	svc, err := notices.New(context.Background(), notices.Config{Store: st, Organisations: fakeDir{}, Queue: discardQueue{}, Hostname: hostname})
	if err != nil {
		b.Fatal(err)
	}
	cred, tok, _ := svc.AddCredential(context.Background(), "bench", []string{"A81001"}, "")
	_ = tok
	when := time.Now().Add(48 * time.Hour)
	var n atomic.Int64
	b.SetParallelism(50)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			req := notices.Request{Reference: fmt.Sprintf("B-%d", i), Organisation: "A81001", Kind: "new",
				Patient:     notices.PatientRequest{Name: "Ada Lovelace", Email: "ada@example.org"},
				Appointment: notices.AppointmentRequest{Start: when.Format(time.RFC3339), End: when.Add(time.Hour).Format(time.RFC3339), Location: "Leeds"}}
			if _, _, err := svc.Accept(context.Background(), cred, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "notices/s")
}
