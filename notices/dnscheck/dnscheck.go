// Package dnscheck tells an operator which DNS records a notice-sending
// domain needs and which it has: SPF (RFC 7208) allowing this relay to
// send, each DKIM key's TXT record (RFC 6376 §3.6.2) matching the key we
// sign with, and a DMARC policy (RFC 7489 §6.1) so receivers trust the
// aligned DKIM signature.
package dnscheck

import (
	"context"
	"errors"
	"net"
	"strings"

	"nhsrelay/notices/dkim"
)

// Resolver is the part of *net.Resolver the check uses (tests point one
// at a loopback DNS server).
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// State is what a record's check found.
type State string

const (
	OK      State = "ok"
	Missing State = "missing"
	Wrong   State = "wrong"
	Unknown State = "lookup-failed"
)

// Record is one needed record: where, what it should hold, what is there.
type Record struct {
	Kind    string // "SPF", "DKIM", "DMARC"
	Name    string // the DNS name of the TXT record
	Want    string // a value that would do
	Present []string
	State   State
	Advice  string
}

// Check looks at domain's records. relayHost is this relay's host name
// (server.hostname), which SPF must allow; keys are the DKIM keys we sign
// with (those for domain are checked).
func Check(ctx context.Context, r Resolver, domain, relayHost string, keys []dkim.Key) []Record {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	var out []Record

	spf := Record{Kind: "SPF", Name: domain, Want: "v=spf1 a:" + relayHost + " -all"}
	txts, err := lookup(ctx, r, domain, &spf)
	for _, t := range txts {
		if strings.HasPrefix(strings.ToLower(t), "v=spf1") {
			spf.Present = append(spf.Present, t)
		}
	}
	switch {
	case err != nil:
	case len(spf.Present) == 0:
		spf.State, spf.Advice = Missing, "publish an SPF record that allows "+relayHost
	case len(spf.Present) > 1:
		spf.State, spf.Advice = Wrong, "more than one SPF record is a permanent error (RFC 7208 §4.5); merge them"
	case !strings.Contains(strings.ToLower(spf.Present[0]), strings.ToLower(relayHost)):
		spf.State, spf.Advice = Wrong, "the SPF record does not name "+relayHost+" (a: or include:); if it allows its addresses by ip4:/ip6: this is fine"
	default:
		spf.State = OK
	}
	out = append(out, spf)

	found := false
	for _, k := range keys {
		if !strings.EqualFold(k.Domain, domain) {
			continue
		}
		found = true
		want, _ := dkim.TXTRecord(k.Signer)
		rec := Record{Kind: "DKIM", Name: k.Selector + "._domainkey." + domain, Want: want}
		txts, err := lookup(ctx, r, rec.Name, &rec)
		rec.Present = joinTXT(txts)
		switch {
		case err != nil:
		case len(rec.Present) == 0:
			rec.State, rec.Advice = Missing, "publish the key: nhsrelay dkim keygen printed this record"
		case publicKey(rec.Present[0]) != publicKey(want):
			rec.State, rec.Advice = Wrong, "the published key is not the one notices are signed with"
		default:
			rec.State = OK
		}
		out = append(out, rec)
	}
	if !found {
		out = append(out, Record{Kind: "DKIM", Name: "<selector>._domainkey." + domain, State: Missing,
			Advice: "no DKIM key for this domain in notices.dkim: make one with nhsrelay dkim keygen " + domain + " SELECTOR"})
	}

	dm := Record{Kind: "DMARC", Name: "_dmarc." + domain, Want: "v=DMARC1; p=quarantine; adkim=r; aspf=r"}
	txts, err = lookup(ctx, r, dm.Name, &dm)
	for _, t := range txts {
		if strings.HasPrefix(t, "v=DMARC1") {
			dm.Present = append(dm.Present, t)
		}
	}
	switch {
	case err != nil:
	case len(dm.Present) == 0:
		dm.State, dm.Advice = Missing, "publish a DMARC policy; big mailbox providers expect one from bulk senders"
	case strings.Contains(strings.ReplaceAll(dm.Present[0], " ", ""), "p=none"):
		dm.State, dm.Advice = OK, "p=none only monitors; move to quarantine or reject once reports are clean"
	default:
		dm.State = OK
	}
	out = append(out, dm)
	return out
}

// lookup reads TXT records; NXDOMAIN or no data is none, other failures
// mark rec.
func lookup(ctx context.Context, r Resolver, name string, rec *Record) ([]string, error) {
	txts, err := r.LookupTXT(ctx, name)
	var de *net.DNSError
	if errors.As(err, &de) && de.IsNotFound {
		return nil, nil
	}
	if err != nil {
		rec.State, rec.Advice = Unknown, err.Error()
	}
	return txts, err
}

// joinTXT keeps records as the resolver gives them (Go joins a record's
// strings).
func joinTXT(t []string) []string { return t }

// publicKey is the p= tag of a DKIM record, without spaces.
func publicKey(rec string) string {
	for _, f := range strings.Split(rec, ";") {
		if k, v, ok := strings.Cut(strings.TrimSpace(f), "="); ok && k == "p" {
			return strings.ReplaceAll(v, " ", "")
		}
	}
	return ""
}
