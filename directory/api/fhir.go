package api

import (
	"strings"
	"time"

	"nhsrelay/directory"
)

// FHIR R4 code systems and identifier systems used in the read API.
const (
	// ODSSystem identifies ODS organisation codes (NHS England FHIR).
	ODSSystem = "https://fhir.nhs.uk/Id/ods-organization-code"
	// EndpointIDSystem identifies this directory's endpoint IDs. It is a URN
	// because the IDs are local to the relay that issued them.
	EndpointIDSystem = "urn:nhsrelay:endpoint-id"
	// ConnectionTypeSystem is HL7's endpoint-connection-type code system.
	ConnectionTypeSystem = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
	// LocalConnectionTypeSystem holds our code for endpoints with no S/MIME.
	LocalConnectionTypeSystem = "urn:nhsrelay:endpoint-connection-type"
	// PayloadTypeSystem is HL7's endpoint-payload-type code system.
	PayloadTypeSystem = "http://terminology.hl7.org/CodeSystem/endpoint-payload-type"
	// OrganisationKindSystem holds directory.Organisation.Kind values.
	OrganisationKindSystem = "urn:nhsrelay:organisation-kind"

	fhirJSON = "application/fhir+json"
)

type fhirIdentifier struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value"`
}

type fhirCoding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

type fhirCodeableConcept struct {
	Coding []fhirCoding `json:"coding,omitempty"`
	Text   string       `json:"text,omitempty"`
}

type fhirReference struct {
	Reference  string          `json:"reference,omitempty"`
	Identifier *fhirIdentifier `json:"identifier,omitempty"`
	Display    string          `json:"display,omitempty"`
}

// fhirExtension is an R4 Extension (R4 §2.21.0.2) with the value types we
// use; exactly one value is set.
type fhirExtension struct {
	URL               string         `json:"url"`
	ValueBase64Binary string         `json:"valueBase64Binary,omitempty"`
	ValueString       string         `json:"valueString,omitempty"`
	ValueDate         string         `json:"valueDate,omitempty"`
	ValueReference    *fhirReference `json:"valueReference,omitempty"`
}

type fhirPeriod struct {
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
}

type fhirContactPoint struct {
	System string `json:"system"`
	Value  string `json:"value"`
	Use    string `json:"use,omitempty"`
}

type fhirAddress struct {
	Use        string   `json:"use,omitempty"`
	Line       []string `json:"line,omitempty"`
	PostalCode string   `json:"postalCode,omitempty"`
}

// FHIREndpoint is an R4 Endpoint resource.
type FHIREndpoint struct {
	ResourceType         string                `json:"resourceType"` // "Endpoint"
	ID                   string                `json:"id"`
	Extension            []fhirExtension       `json:"extension,omitempty"`
	Identifier           []fhirIdentifier      `json:"identifier"`
	Status               string                `json:"status"`
	ConnectionType       fhirCoding            `json:"connectionType"`
	Name                 string                `json:"name,omitempty"`
	ManagingOrganization *fhirReference        `json:"managingOrganization,omitempty"`
	Contact              []fhirContactPoint    `json:"contact,omitempty"`
	Period               *fhirPeriod           `json:"period,omitempty"`
	PayloadType          []fhirCodeableConcept `json:"payloadType"`
	PayloadMimeType      []string              `json:"payloadMimeType,omitempty"`
	Address              string                `json:"address"`
}

// FHIROrganization is an R4 Organization resource.
type FHIROrganization struct {
	ResourceType string                `json:"resourceType"` // "Organization"
	ID           string                `json:"id"`
	Extension    []fhirExtension       `json:"extension,omitempty"`
	Identifier   []fhirIdentifier      `json:"identifier"`
	Active       bool                  `json:"active"`
	Type         []fhirCodeableConcept `json:"type,omitempty"`
	Name         string                `json:"name"`
	Telecom      []fhirContactPoint    `json:"telecom,omitempty"`
	Address      []fhirAddress         `json:"address,omitempty"`
	Endpoint     []fhirReference       `json:"endpoint,omitempty"`
}

// FHIRStatus maps an endpoint to FHIR R4 Endpoint.status (active |
// suspended | error | off | entered-in-error | test) by what RCPT would
// answer for it now; usable is directory.(*Directory).Usable's verdict, so
// the two never disagree:
//
//	usable                         → active     clinical mail is accepted
//	retired                        → off        permanently out of use
//	pending, not usable            → off        not yet verified
//	verified or suspended, refused → suspended  refused for now, with a reason
//	                                            (a verified endpoint whose
//	                                            verification ran out or whose
//	                                            organisation closed included)
func FHIRStatus(e directory.Endpoint, usable bool) string {
	switch {
	case e.Status == directory.StatusRetired:
		return "off"
	case usable:
		return "active"
	case e.Status == directory.StatusVerified || e.Status == directory.StatusSuspended:
		return "suspended"
	}
	return "off"
}

// fhirStatus is FHIRStatus with the directory's verdict on e.
func (s *server) fhirStatus(e directory.Endpoint) string {
	ok, _ := s.d.Usable(e)
	return FHIRStatus(e, ok)
}

// connectionType: an nhsrelay endpoint receives SMTP mail signed and
// encrypted with S/MIME, which is what HL7's "direct-project" code names
// (the Direct Project is S/MIME over SMTP). An endpoint an administrator has
// exempted from S/MIME (TLSOnly) is not Direct, so it gets our own code.
func connectionType(e directory.Endpoint) fhirCoding {
	if e.TLSOnly {
		return fhirCoding{System: LocalConnectionTypeSystem, Code: "smtp-tls",
			Display: "SMTP over verified TLS, without S/MIME"}
	}
	return fhirCoding{System: ConnectionTypeSystem, Code: "direct-project", Display: "Direct Project"}
}

// mailtoURI writes addr as a mailto: URI (RFC 6068 §2): characters of the
// address outside unreserved and some-delims are percent-encoded.
//
// QUIRK: an endpoint for a whole domain has no mailbox; it is written with
// the local part "*" ("mailto:*@nhs.example"), a valid atext local part
// (RFC 5322 §3.2.3) that reads as "any mailbox at this domain".
func mailtoURI(addr string) string {
	if !strings.Contains(addr, "@") {
		addr = "*@" + addr
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.WriteString("mailto:")
	for i := 0; i < len(addr); i++ {
		c := addr[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("-._~!$'()*+,;:@", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func fhirTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func contactPoints(cs []string) []fhirContactPoint {
	var out []fhirContactPoint
	for _, c := range cs {
		sys := "phone"
		if strings.Contains(c, "@") {
			sys = "email"
		}
		out = append(out, fhirContactPoint{System: sys, Value: c, Use: "work"})
	}
	return out
}

// toFHIREndpoint renders e with its FHIR status; org is its organisation
// if known (zero if not); nextHop is this relay's published MX
// ("host:port", "" for none), advertised on hosted endpoints.
func toFHIREndpoint(e directory.Endpoint, org directory.Organisation, status, nextHop string) FHIREndpoint {
	purpose := e.Purpose
	if purpose == "" {
		purpose = directory.PurposeGeneral
	}
	fe := FHIREndpoint{
		ResourceType:   "Endpoint",
		ID:             e.ID,
		Identifier:     []fhirIdentifier{{System: EndpointIDSystem, Value: e.ID}},
		Status:         status,
		ConnectionType: connectionType(e),
		Name:           e.Address + " (" + purpose + ")",
		ManagingOrganization: &fhirReference{Reference: "Organization/" + e.ODS,
			Identifier: &fhirIdentifier{System: ODSSystem, Value: e.ODS}, Display: org.Name},
		Contact: contactPoints(e.Contacts),
		// The payload is any clinical message; the purpose says what for.
		PayloadType: []fhirCodeableConcept{{
			Coding: []fhirCoding{{System: PayloadTypeSystem, Code: "any", Display: "Any"}},
			Text:   purpose}},
		// RFC 8551 §3.2: an S/MIME enveloped message is application/pkcs7-mime,
		// wrapping the message/rfc822 the sender wrote.
		PayloadMimeType: []string{"application/pkcs7-mime", "message/rfc822"},
		Address:         mailtoURI(e.Address),
	}
	if org.Name != "" {
		fe.Name = org.Name + " – " + purpose
	}
	// Without a certificate nobody can encrypt to it: an exempted endpoint,
	// or a hosted one whose mail is delivered here as it arrives.
	if e.TLSOnly || len(e.Certificates) == 0 {
		fe.PayloadMimeType = []string{"message/rfc822"}
	}
	fe.Period = endpointPeriod(e, org, status)
	fe.Extension = endpointExtensions(e, nextHop)
	return fe
}

// endpointPeriod is Endpoint.period: from the verification to its expiry
// while the endpoint is in service; a suspended endpoint's period ends
// when it was taken out of service (the suspension, the verification's
// expiry, or its organisation's closure), so a reader sees since when.
func endpointPeriod(e directory.Endpoint, org directory.Organisation, status string) *fhirPeriod {
	v := e.Verification
	p := &fhirPeriod{Start: fhirTime(v.At), End: fhirTime(v.Expires)}
	if status == "suspended" || status == "off" && e.Status == directory.StatusRetired {
		switch {
		case !e.StatusAt.IsZero():
			p.End = fhirTime(e.StatusAt)
		case !org.ClosedOn.IsZero() && (org.Status == directory.OrgClosed || org.Status == directory.OrgDormant):
			p.End = fhirTime(org.ClosedOn)
		}
	}
	if p.Start != "" && p.End != "" && p.End < p.Start { // RFC 3339 UTC strings order as times
		p.End = p.Start
	}
	if *p == (fhirPeriod{}) {
		return nil
	}
	return p
}

// toFHIROrganization renders o and references its endpoints that are not
// retired.
func toFHIROrganization(o directory.Organisation, eps []directory.Endpoint) FHIROrganization {
	fo := FHIROrganization{
		ResourceType: "Organization",
		ID:           o.ODS,
		Identifier:   []fhirIdentifier{{System: ODSSystem, Value: o.ODS}},
		Active:       o.Status == directory.OrgActive,
		Name:         o.Name,
	}
	if o.Kind != "" {
		fo.Type = []fhirCodeableConcept{{Coding: []fhirCoding{{System: OrganisationKindSystem, Code: o.Kind}},
			Text: strings.ReplaceAll(o.Kind, "-", " ")}}
	}
	if o.Phone != "" {
		fo.Telecom = []fhirContactPoint{{System: "phone", Value: o.Phone, Use: "work"}}
	}
	if len(o.Address) > 0 || o.Postcode != "" {
		fo.Address = []fhirAddress{{Use: "work", Line: o.Address, PostalCode: o.Postcode}}
	}
	for _, e := range eps {
		if e.Status != directory.StatusRetired {
			fo.Endpoint = append(fo.Endpoint, fhirReference{Reference: "Endpoint/" + e.ID, Display: e.Address})
		}
	}
	fo.Extension = organisationExtensions(o)
	return fo
}

// Bundle is an R4 Bundle of type searchset.
type Bundle struct {
	ResourceType string        `json:"resourceType"` // "Bundle"
	Type         string        `json:"type"`         // "searchset"
	Total        int           `json:"total"`
	Link         []bundleLink  `json:"link,omitempty"`
	Entry        []bundleEntry `json:"entry,omitempty"`
}

type bundleLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

type bundleEntry struct {
	FullURL  string       `json:"fullUrl"`
	Resource any          `json:"resource"`
	Search   bundleSearch `json:"search"`
}

type bundleSearch struct {
	Mode string `json:"mode"` // "match"
}

// OperationOutcome is an R4 OperationOutcome carrying one issue.
type OperationOutcome struct {
	ResourceType string      `json:"resourceType"` // "OperationOutcome"
	Issue        []fhirIssue `json:"issue"`
}

type fhirIssue struct {
	Severity    string `json:"severity"` // "error"
	Code        string `json:"code"`     // "not-found", "invalid", "not-supported", "exception"
	Diagnostics string `json:"diagnostics"`
}
