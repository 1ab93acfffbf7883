package peers

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"testing"
	"time"

	"nhsrelay/certs/certstest"
	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

// Size of the synthetic national directory a peer publishes: 50,000
// hosted endpoints of 12,000 organisations, each with an S/MIME
// certificate from the peer's CA.
const (
	benchEndpoints = 50000
	benchOrgs      = 12000
)

// BenchmarkPeerSync50k times a full peer sync of 50,000 endpoints over
// loopback HTTPS: every page of the peer's FHIR search fetched, each
// certificate verified against the peer's CA, one atomic directory write.
// Reported per sync: first-s (an empty directory imports all 50,000),
// again-s (a second sync, nothing changed: fetch and compare only), and
// the named reference fetch-s, the same pages fetched and decoded (no
// certificate checks, no directory), measured in the same loop; ratio =
// first / fetch.
func BenchmarkPeerSync50k(b *testing.B) {
	ca := certstest.NewCA(b)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	eps := make([]directory.Endpoint, benchEndpoints)
	for i := range eps {
		addr := fmt.Sprintf("ep%05d@p%05d.nhs.example", i, i%benchOrgs)
		c := ca.Issue(b, &x509.Certificate{Subject: pkix.Name{CommonName: addr}, EmailAddresses: []string{addr},
			KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}},
			key.Public())
		e := directorytest.Verified(addr, directory.NextHop{Kind: directory.HopHosted})
		e.ID, e.ODS, e.Certificates = fmt.Sprintf("ep-%05d", i), fmt.Sprintf("P%05d", i%benchOrgs), [][]byte{c.Raw}
		eps[i] = e
	}
	st := directorytest.NewStore(b)
	directorytest.Seed(b, st, eps...)
	d, err := directory.Open(b.Context(), directory.Config{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	r := serveRemote(b, ca, d)
	p := r.peer("national")
	var first, again, fetchOnly time.Duration
	for b.Loop() {
		b.StopTimer()
		l := newLocal(b)
		cas, err := p.check()
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if n := fetchPages(b, p, cas); n != benchEndpoints {
			b.Fatalf("fetch: %d endpoints", n)
		}
		fetchOnly += time.Since(start)
		start = time.Now()
		in, err := l.m.Add(b.Context(), p)
		if err != nil || in.Endpoints != benchEndpoints {
			b.Fatalf("first sync: %d endpoints, %v", in.Endpoints, err)
		}
		first += time.Since(start)
		start = time.Now()
		in, err = l.m.Sync(b.Context(), p.Name)
		if err != nil || in.Last.Unchanged != benchEndpoints {
			b.Fatalf("second sync: %+v, %v", in.Last, err)
		}
		again += time.Since(start)
	}
	n := float64(b.N)
	b.ReportMetric(first.Seconds()/n, "first-s")
	b.ReportMetric(again.Seconds()/n, "again-s")
	b.ReportMetric(fetchOnly.Seconds()/n, "fetch-s")
	b.ReportMetric(first.Seconds()/fetchOnly.Seconds(), "ratio")
	b.ReportMetric(benchEndpoints*n/first.Seconds(), "endpoints/s")
}

// fetchPages GETs and decodes every page of p's Endpoint search, the
// reference: what any FHIR client must do to read the directory.
func fetchPages(b *testing.B, p Peer, cas []*x509.Certificate) int {
	hc := client(cas, time.Minute)
	n := 0
	for next := p.URL + "/Endpoint?_count=1000"; next != ""; {
		var bd bundle
		if err := getJSON(b.Context(), hc, next, p.Token, &bd); err != nil {
			b.Fatal(err)
		}
		n += len(bd.Entry)
		next = ""
		for _, l := range bd.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
	}
	return n
}
