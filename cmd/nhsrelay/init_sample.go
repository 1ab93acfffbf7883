package main

import (
	"fmt"
	"strconv"
	"strings"

	"nhsrelay/certs"
	"nhsrelay/directory"
	"nhsrelay/smtpd"
)

// Development ports: unprivileged, so `make run` needs no root, and on
// loopback, so a development instance is never reachable from outside.
const (
	devSubmission  = "127.0.0.1:2587"
	devSubmissions = "127.0.0.1:2465"
	devMX          = "127.0.0.1:2525"
	devAdmin       = "127.0.0.1:8025"
)

// initOptions are init's flags. The zero values of caName, ods, domain and
// ports give the documented single-instance sample; setting them makes a
// second instance that collides with the first in nothing: CA name,
// organisation, addresses, relay_ods and listener ports.
type initOptions struct {
	hostname string
	caName   string // "" → host name plus a random suffix
	ods      string // "" → sampleRelayODS and the RX9 hospital
	domain   string // "" → sampleDomain
	ports    string // "" → the dev ports; "0" → kernel-chosen; N → N..N+3
}

func (o initOptions) check() error {
	if !smtpd.ValidHostname(o.hostname) {
		return fmt.Errorf("-hostname %q is not a host name", o.hostname)
	}
	if o.ods != "" && !certs.IsODSCode(strings.ToUpper(o.ods)) {
		return fmt.Errorf("-ods %q is not an ODS code (3–8 letters and digits)", o.ods)
	}
	if o.domain != "" && (!smtpd.ValidHostname(o.domain) || !strings.Contains(o.domain, ".")) {
		return fmt.Errorf("-domain %q is not a mail domain", o.domain)
	}
	if o.ports != "" {
		base, err := strconv.Atoi(o.ports)
		if err != nil || base < 0 || (base > 0 && (base < 1024 || base+3 > 65535)) {
			return fmt.Errorf("-ports %q: want 0 (the kernel chooses) or a first port from 1024 to 65532", o.ports)
		}
	}
	return nil
}

// caCommonName names the development CA uniquely, so two instances' CAs
// (and their CRLs) are never confused by a reader that goes by name.
func (o initOptions) caCommonName() string {
	if o.caName != "" {
		return o.caName
	}
	return "nhsrelay development CA (" + o.hostname + " " + randomHex(4) + ")"
}

type initListeners struct{ submission, submissions, mx, admin string }

func (o initOptions) listeners() initListeners {
	switch o.ports {
	case "":
		return initListeners{devSubmission, devSubmissions, devMX, devAdmin}
	case "0":
		any := "127.0.0.1:0"
		return initListeners{any, any, any, any}
	}
	base, _ := strconv.Atoi(o.ports) // check() accepted it
	at := func(n int) string { return "127.0.0.1:" + strconv.Itoa(base+n) }
	return initListeners{at(0), at(1), at(2), at(3)}
}

// A sample directory shaped like ODS data: two organisations hosted here
// (verified by attestation), one remote practice still pending, one remote
// pharmacy suspended. Codes and names are made up; nhs.example is reserved
// (RFC 2606).
const (
	sampleDomain     = "nhs.example"
	sampleSenderUser = "riverside"
	sampleSender     = "reception.a81001@nhs.example" // hosted: the account's own mailbox
	sampleRecipient  = "referrals.rx9@nhs.example"    // hosted: where the first message goes
)

// initSample is the sample directory for one set of options.
type initSample struct {
	relayODS          string
	domain            string
	user              string
	sender, recipient string
	hospitalODS       string // owns recipient; relayODS when -ods was given
}

func newSample(o initOptions) initSample {
	if o.ods == "" && o.domain == "" {
		return initSample{relayODS: sampleRelayODS, domain: sampleDomain, user: sampleSenderUser,
			sender: sampleSender, recipient: sampleRecipient, hospitalODS: "RX9"}
	}
	s := initSample{relayODS: sampleRelayODS, domain: sampleDomain, user: sampleSenderUser, hospitalODS: "RX9"}
	if o.domain != "" {
		s.domain = strings.ToLower(o.domain)
	}
	if o.ods != "" {
		// Both hosted endpoints belong to the chosen organisation, so a
		// second instance hosts nothing the first one does.
		s.relayODS = strings.ToUpper(o.ods)
		s.hospitalODS = s.relayODS
		s.user = strings.ToLower(s.relayODS)
	}
	s.sender = "reception." + strings.ToLower(s.relayODS) + "@" + s.domain
	s.recipient = "referrals." + strings.ToLower(s.hospitalODS) + "@" + s.domain
	return s
}

func (s initSample) orgs() []directory.Organisation {
	all := []directory.Organisation{
		{ODS: sampleRelayODS, Name: "Riverside Medical Practice", Kind: "gp-practice", Status: directory.OrgActive,
			Address: []string{"1 River Street", "Leeds"}, Postcode: "LS1 4AP", Phone: "0113 496 0000", Source: directory.SourceAdmin},
		{ODS: "RX9", Name: "Northfield Teaching Hospitals NHS Trust", Kind: "trust", Status: directory.OrgActive,
			Address: []string{"Northfield Road", "Leeds"}, Postcode: "LS9 7TF", Phone: "0113 496 0100", Source: directory.SourceAdmin},
		{ODS: "B82005", Name: "Hillside Surgery", Kind: "gp-practice", Status: directory.OrgActive,
			Address: []string{"2 Hill Lane", "York"}, Postcode: "YO1 7HH", Source: directory.SourceAdmin},
		{ODS: "FA123", Name: "Harbour Pharmacy", Kind: "pharmacy", Status: directory.OrgActive,
			Address: []string{"3 Quay Side", "Whitby"}, Postcode: "YO21 3PU", Source: directory.SourceAdmin},
	}
	if s.relayODS == sampleRelayODS {
		return all
	}
	// Another instance: its own organisation, and only the remote samples
	// whose codes it does not use.
	out := []directory.Organisation{{ODS: s.relayODS, Name: "Sample organisation " + s.relayODS, Kind: "gp-practice",
		Status: directory.OrgActive, Address: []string{"1 Sample Street"}, Source: directory.SourceAdmin}}
	for _, o := range all[2:] {
		if o.ODS != s.relayODS {
			out = append(out, o)
		}
	}
	return out
}

type sampleEndpoint struct {
	e       directory.Endpoint
	verify  bool   // attest it
	suspend string // suspend it with this reason
	smime   bool   // issue it an S/MIME certificate
}

func (s initSample) endpoints() []sampleEndpoint {
	all := []sampleEndpoint{
		{e: directory.Endpoint{Address: s.sender, ODS: s.relayODS, Purpose: directory.PurposeGeneral,
			NextHop: directory.NextHop{Kind: directory.HopHosted}, Contacts: []string{"practice.manager." + strings.ToLower(s.relayODS) + "@" + s.domain}},
			verify: true, smime: true},
		{e: directory.Endpoint{Address: s.recipient, ODS: s.hospitalODS, Purpose: directory.PurposeReferrals,
			NextHop: directory.NextHop{Kind: directory.HopHosted}, Contacts: []string{"it." + strings.ToLower(s.hospitalODS) + "@" + s.domain}},
			verify: true, smime: true},
		{e: directory.Endpoint{Address: "admin.b82005@hillside.nhs.example", ODS: "B82005", Purpose: directory.PurposeGeneral,
			NextHop: directory.NextHop{Kind: directory.HopMX}}},
		{e: directory.Endpoint{Address: "dispensary.fa123@harbour.nhs.example", ODS: "FA123", Purpose: directory.PurposePrescriptions,
			NextHop: directory.NextHop{Kind: directory.HopHost, Host: "mail.harbour.nhs.example:25"}},
			suspend: "sample data: the pharmacy has moved to a new address"},
	}
	var out []sampleEndpoint
	for _, se := range all {
		if se.e.NextHop.Kind == directory.HopHosted || se.e.ODS != s.relayODS {
			out = append(out, se)
		}
	}
	return out
}
