package dnscheck_test

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"nhsrelay/notices/dkim"
	"nhsrelay/notices/dnscheck"
)

// dnsServer answers TXT queries from zone on a loopback UDP port and
// returns a resolver that asks only it.
func dnsServer(t *testing.T, zone map[string][]string) *net.Resolver {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		name := strings.TrimSuffix(strings.ToLower(q.Question[0].Name), ".")
		txts, ok := zone[name]
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		for _, s := range txts {
			var parts []string // a TXT string holds at most 255 octets (RFC 1035 §3.3.14)
			for len(s) > 255 {
				parts, s = append(parts, s[:255]), s[255:]
			}
			m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: append(parts, s)})
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	key, _ := dkim.GenerateKey("rsa")
	other, _ := dkim.GenerateKey("ed25519")
	txt, _ := dkim.TXTRecord(key)
	otherTXT, _ := dkim.TXTRecord(other)
	keys := []dkim.Key{{Domain: "good.example", Selector: "s1", Signer: key}, {Domain: "bad.example", Selector: "s1", Signer: key}}
	r := dnsServer(t, map[string][]string{
		"good.example":                {"v=spf1 a:relay.nhs.example -all", "google-site-verification=x"},
		"s1._domainkey.good.example":  {txt},
		"_dmarc.good.example":         {"v=DMARC1; p=quarantine"},
		"bad.example":                 {"v=spf1 -all"},
		"s1._domainkey.bad.example":   {otherTXT},
		"_dmarc.unrelated.example":    {"v=DMARC1; p=none"},
		"nothing.example.placeholder": {},
	})
	states := func(domain string) string {
		var s []string
		for _, rec := range dnscheck.Check(context.Background(), r, domain, "relay.nhs.example", keys) {
			s = append(s, rec.Kind+"="+string(rec.State))
		}
		return strings.Join(s, " ")
	}
	for domain, want := range map[string]string{
		"good.example": "SPF=ok DKIM=ok DMARC=ok",
		"bad.example":  "SPF=wrong DKIM=wrong DMARC=missing",
		"none.example": "SPF=missing DKIM=missing DMARC=missing",
	} {
		if got := states(domain); got != want {
			t.Errorf("Check(%s) = %s, want %s", domain, got, want)
		}
	}
}
