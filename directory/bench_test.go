package directory_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"strings"
	"testing"
	"time"

	"nhsrelay/certs"
	"nhsrelay/certs/certstest"
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

// national is a directory the size of England's: 12,000 organisations and
// 50,000 endpoints, 10,000 hosted here (no certificate needed) and 40,000
// remote, each with its own S/MIME certificate judged as serve judges it
// (certs.Trust.ValidateSMIME, chains cached), RequireSMIME on.
type national struct {
	d              *directory.Directory
	hosted, remote []string
}

func newNational(b *testing.B) *national {
	b.Helper()
	ca := certstest.NewCA(b)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	trust := &certs.Trust{Roots: ca.Pool}
	n := &national{}
	eps := make([]directory.Endpoint, 0, 50000)
	for i := range 50000 {
		ods := fmt.Sprintf("P%05d", i%12000)
		addr := fmt.Sprintf("ep%d.%s@nhs.example", i, strings.ToLower(ods))
		e := directorytest.Verified(addr, directory.NextHop{Kind: directory.HopMX})
		e.ODS = ods
		if i%5 == 0 {
			e.NextHop = directory.NextHop{Kind: directory.HopHosted}
			n.hosted = append(n.hosted, addr)
		} else {
			e.Certificates = [][]byte{ca.Issue(b, &x509.Certificate{Subject: pkix.Name{CommonName: addr}, EmailAddresses: []string{addr},
				KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}, key.Public()).Raw}
			n.remote = append(n.remote, addr)
		}
		eps = append(eps, e)
	}
	n.d = directorytest.Open(b, func(c *directory.Config) {
		c.RequireSMIME = true
		c.CertCheck = func(c *x509.Certificate, inter []*x509.Certificate, now time.Time) error {
			// ECDSA keys sign only; judged for signing so the chain, dates
			// and revocation path are what is measured.
			return trust.ValidateSMIME(c, inter, now, certs.Sign)
		}
	}, eps...)
	if len(n.d.Organisations(b.Context(), "")) != 12000 {
		b.Fatalf("national directory has %d organisations, want 12000", len(n.d.Organisations(b.Context(), "")))
	}
	return n
}

// BenchmarkRecipientDecision: the one recipient decision at national size
// — RCPT (CheckRecipient) for hosted and remote endpoints, and directory
// check (Check) — in µs per lookup, against the reference of finding the
// endpoint alone (Lookup, no decision) measured in the same run.
func BenchmarkRecipientDecision(b *testing.B) {
	n := newNational(b)
	ctx := b.Context()
	// A hot set of 1,000 addresses, seen once before timing (a relay's
	// recipients repeat: chains are verified on first sight, then cached).
	const hot = 1000
	pick := func(list []string, i int) string { return list[(i*7919)%hot] }
	for i := range hot {
		n.d.CheckRecipient(ctx, pick(n.remote, i))
	}
	ops := []struct {
		name string
		list []string
		op   func(addr string) error
	}{
		{"Lookup-reference", n.remote, func(a string) error { _, err := n.d.Lookup(ctx, a); return err }},
		{"RCPT-hosted", n.hosted, func(a string) error { _, err := n.d.CheckRecipient(ctx, a); return err }},
		{"RCPT-remote", n.remote, func(a string) error { _, err := n.d.CheckRecipient(ctx, a); return err }},
		{"check-remote", n.remote, func(a string) error {
			if r := n.d.Check(ctx, a); !r.OK {
				return fmt.Errorf("Check(%s) = %v", a, r.Reasons)
			}
			return nil
		}},
	}
	for _, o := range ops {
		b.Run(o.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				if err := o.op(pick(o.list, i)); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(i), "µs/lookup")
		})
	}
	// The ratio, both sides timed in one loop on the same addresses.
	b.Run("RCPT-remote-vs-Lookup", func(b *testing.B) {
		var ref, dec time.Duration
		i := 0
		for b.Loop() {
			a := pick(n.remote, i)
			t0 := time.Now()
			ops[0].op(a)
			t1 := time.Now()
			if err := ops[2].op(a); err != nil {
				b.Fatal(err)
			}
			ref, dec = ref+t1.Sub(t0), dec+time.Since(t1)
			i++
		}
		b.ReportMetric(float64(dec)/float64(ref), "x-lookup")
	})
	// First sight of a certificate: its chain is verified (cold). Last:
	// new certificates push the hot set out of the Trust's chain cache.
	b.Run("RCPT-remote-first-sight", func(b *testing.B) {
		i := hot
		for b.Loop() {
			if _, err := n.d.CheckRecipient(ctx, n.remote[i%len(n.remote)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(i-hot), "µs/lookup")
	})
}
