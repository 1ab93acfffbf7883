package api

import (
	"encoding/base64"
	"time"

	"nhsrelay/directory"
)

// Our FHIR extensions (R4 §2.21.0.2: an extension is identified by its
// url). FHIR has no element for these; they are documented in doc.go and
// README's "Federation between relays" section, and directory/peers reads
// the first two.
const (
	// ExtSMIMECertificate (on Endpoint, repeated): one of the endpoint's
	// S/MIME certificates as base64 DER (valueBase64Binary), the
	// encryption certificate first, then the CA certificates of its chain
	// as the directory stores them.
	ExtSMIMECertificate = "urn:nhsrelay:fhir:extension:smime-certificate"
	// ExtNextHop (on Endpoint): where another relay delivers the
	// endpoint's mail, this relay's MX as "host:port" (valueString), on
	// endpoints hosted here when the relay publishes its MX.
	ExtNextHop = "urn:nhsrelay:fhir:extension:next-hop"
	// ExtClosedOn (on Organization): the date ODS records the
	// organisation closed (valueDate); Organization.active is false.
	ExtClosedOn = "urn:nhsrelay:fhir:extension:closed-on"
	// ExtReplacedBy (on Organization): the successor organisation ODS
	// names (valueReference to Organization/<ODS>, with its ODS
	// identifier), in the manner of R5's Endpoint/Organization "replaces"
	// links. Mail is never rerouted to it; it is shown so a sender can
	// choose.
	ExtReplacedBy = "urn:nhsrelay:fhir:extension:replaced-by"
)

// endpointExtensions are e's certificates and, for an endpoint hosted
// here, the published next hop.
func endpointExtensions(e directory.Endpoint, nextHop string) []fhirExtension {
	var out []fhirExtension
	if !e.TLSOnly {
		for _, der := range e.Certificates {
			out = append(out, fhirExtension{URL: ExtSMIMECertificate, ValueBase64Binary: base64.StdEncoding.EncodeToString(der)})
		}
	}
	if e.Hosted() && nextHop != "" {
		out = append(out, fhirExtension{URL: ExtNextHop, ValueString: nextHop})
	}
	return out
}

// organisationExtensions are o's closure date and successor.
func organisationExtensions(o directory.Organisation) []fhirExtension {
	var out []fhirExtension
	if !o.ClosedOn.IsZero() && o.Status != directory.OrgActive {
		out = append(out, fhirExtension{URL: ExtClosedOn, ValueDate: o.ClosedOn.UTC().Format(time.DateOnly)})
	}
	if o.Successor != "" {
		out = append(out, fhirExtension{URL: ExtReplacedBy, ValueReference: &fhirReference{
			Reference: "Organization/" + o.Successor, Identifier: &fhirIdentifier{System: ODSSystem, Value: o.Successor}}})
	}
	return out
}

// Option configures New.
type Option func(*server)

// PublishNextHop makes the FHIR API advertise hostPort (this relay's MX,
// "mx.example.nhs.uk:25") as the next hop of every endpoint hosted here
// (ExtNextHop), so a federation peer can deliver to them.
func PublishNextHop(hostPort string) Option {
	return func(s *server) { s.nextHop = hostPort }
}
