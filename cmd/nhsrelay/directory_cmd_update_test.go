package main

import (
	"strings"
	"testing"

	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

// set-hop and set-contact change an endpoint in place: it keeps its ID and
// stays verified, the change is audited, and bad input is refused by name.
func TestDirectoryCLISetHopAndContact(t *testing.T) {
	t.Parallel()
	alog := &directorytest.AuditLog{}
	ep := directorytest.Verified("gp@a81001.nhs.example", directory.NextHop{Kind: directory.HopMX})
	ep.Contacts = []string{"old manager"}
	cfg, d, _ := dirServerWith(t, func(c *directory.Config) { c.Audit = alog }, ep)

	out := mustRunDir(t, cfg, "set-hop", "gp@a81001.nhs.example", "mail.a81001.nhs.example:25")
	wantContains(t, "set-hop", out, "next hop now smtp to mail.a81001.nhs.example:25 (verified TLS); verified")
	out = mustRunDir(t, cfg, "set-contact", "gp@a81001.nhs.example", "Jo Bloggs, practice manager", "0113 496 0000")
	wantContains(t, "set-contact", out, "contacts now Jo Bloggs, practice manager; 0113 496 0000")

	e, err := d.Lookup(t.Context(), "gp@a81001.nhs.example")
	if err != nil {
		t.Fatal(err)
	}
	if e.ID != "ep-test-1" || e.Status != directory.StatusVerified || e.NextHop.Host != "mail.a81001.nhs.example:25" ||
		strings.Join(e.Contacts, "|") != "Jo Bloggs, practice manager|0113 496 0000" {
		t.Errorf("after set-hop and set-contact: %+v", e)
	}
	var changed []string
	for _, ev := range alog.Events() {
		if ev.Action == "endpoint.updated" && ev.Endpoint == e.Address {
			changed = append(changed, ev.Detail)
		}
	}
	if strings.Join(changed, "\n") != "changed next_hop; now verified\nchanged contacts; now verified" {
		t.Errorf("audited updates = %q", changed)
	}

	mustRunDir(t, cfg, "set-contact", "-none", "gp@a81001.nhs.example")
	if e, _ := d.Lookup(t.Context(), "gp@a81001.nhs.example"); len(e.Contacts) != 0 {
		t.Errorf("set-contact -none left %q", e.Contacts)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"set-hop", "gp@a81001.nhs.example", "mail.example:notaport"}, "next_hop"},
		{[]string{"set-hop", "nobody@a81001.nhs.example", "mx"}, "no endpoint with address"},
		{[]string{"set-contact", "gp@a81001.nhs.example"}, "at least one CONTACT"},
		{[]string{"set-contact", "-none", "gp@a81001.nhs.example", "x"}, "not both"},
	} {
		if _, err := runDir(t, cfg, "", tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("directory %q: err = %v, want %q", tc.args, err, tc.want)
		}
	}
}
