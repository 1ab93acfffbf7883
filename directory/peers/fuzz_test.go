package peers

import (
	"crypto/x509"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// FuzzToPeerEndpoint: whatever a peer sends as an Endpoint resource is
// converted or skipped, never a panic; what is kept has an address and the
// peer's id, its next hop is a host over verified TLS, and certificates are
// kept only if they verified (here they never can: the pool is empty).
func FuzzToPeerEndpoint(f *testing.F) {
	for _, s := range []string{
		`{"resourceType":"Endpoint","id":"ep-1","status":"active","address":"mailto:gp@a81001.nhs.example",
		  "extension":[{"url":"urn:nhsrelay:fhir:extension:next-hop","valueString":"mx.a.example:25"}],
		  "managingOrganization":{"reference":"Organization/A81001","display":"Riverside",
		  "identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"A81001"}}}`,
		`{"resourceType":"Endpoint","id":"ep-2","status":"suspended","address":"mailto:*@a81001.nhs.example",
		  "extension":[{"url":"urn:nhsrelay:fhir:extension:next-hop","valueString":"127.0.0.1:25"},
		  {"url":"urn:nhsrelay:fhir:extension:smime-certificate","valueBase64Binary":"MIIB"}]}`,
		`{"resourceType":"Endpoint","id":"ep-3","status":"off","address":"mailto:x@y"}`,
		`{"address":"mailto:%zz","extension":[{"url":"urn:nhsrelay:fhir:extension:next-hop","valueString":"h:1"}]}`,
		`{"address":"http://x","extension":[{"url":"urn:nhsrelay:fhir:extension:next-hop","valueString":"h:1"}]}`,
		`{}`, `null`, `[]`, `{"extension":[{"url":"urn:nhsrelay:fhir:extension:smime-certificate","valueBase64Binary":"!!"}]}`,
	} {
		f.Add([]byte(s))
	}
	p := Peer{Name: "fuzz", URL: "https://peer.example/fhir"}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		var e endpoint
		if json.Unmarshal(data, &e) != nil {
			return
		}
		pe, ok, _ := toPeerEndpoint(e, p, x509.NewCertPool(), nil, now)
		if !ok {
			return
		}
		if pe.Address == "" && !strings.HasPrefix(strings.ToLower(e.Address), "mailto:") || pe.RemoteID != e.ID {
			t.Fatalf("kept %+v from %s", pe, data)
		}
		if pe.NextHop.Host == "" || pe.NextHop.TLS != "verified" {
			t.Fatalf("next hop %+v from %s", pe.NextHop, data)
		}
		if len(pe.Certificates) > 0 {
			t.Fatalf("certificates kept without a CA to verify them: %s", data)
		}
	})
}
