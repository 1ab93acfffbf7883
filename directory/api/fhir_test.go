package api

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"nhsrelay/certs/certstest"
	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

// fhirFixture: a verified mailbox, a suspended one, a pending domain
// endpoint, a retired one, and a second organisation's endpoint.
func fhirFixture(t *testing.T) *fixture {
	gp := directorytest.Verified("gp@a81001.nhs.example", directory.NextHop{Kind: directory.HopMX})
	gp.Purpose, gp.Contacts = directory.PurposeReferrals, []string{"pm@a81001.nhs.example", "01632 960000"}
	cert, _ := certstest.NewCA(t).SMIMECertificate(t, gp.Address)
	gp.Certificates = [][]byte{cert.Raw}
	tlsOnly := verified("results@a81001.nhs.example")
	other := directorytest.Verified("gp@b82002.nhs.example", directory.NextHop{Kind: directory.HopMX})
	other.ODS = "B82002"
	retired := directorytest.Pending("old@a81001.nhs.example")
	retired.Status = directory.StatusRetired
	return start(t, options{}, gp,
		directorytest.Suspended("closed@a81001.nhs.example", "mailbox moved"),
		directorytest.Pending("a81001.nhs.example"),
		retired, tlsOnly, other)
}

func (r response) wantFHIR(t *testing.T, status int, out any) response {
	t.Helper()
	r.want(t, status, out)
	if ct := r.header.Get("Content-Type"); ct != "application/fhir+json" {
		t.Errorf("Content-Type = %q, want application/fhir+json", ct)
	}
	return r
}

func TestFHIREndpointRead(t *testing.T) {
	t.Parallel()
	f := fhirFixture(t)
	var e FHIREndpoint
	f.do(t, "GET", "/fhir/Endpoint/ep-test-1", nil).wantFHIR(t, http.StatusOK, &e)
	if e.ResourceType != "Endpoint" || e.ID != "ep-test-1" || e.Status != "active" ||
		e.Address != "mailto:gp@a81001.nhs.example" {
		t.Errorf("Endpoint = %+v", e)
	}
	if len(e.Identifier) != 1 || e.Identifier[0] != (fhirIdentifier{EndpointIDSystem, "ep-test-1"}) {
		t.Errorf("identifier = %+v", e.Identifier)
	}
	if e.ConnectionType != (fhirCoding{ConnectionTypeSystem, "direct-project", "Direct Project"}) {
		t.Errorf("connectionType = %+v", e.ConnectionType)
	}
	mo := e.ManagingOrganization
	if mo == nil || mo.Reference != "Organization/A81001" || mo.Identifier == nil ||
		*mo.Identifier != (fhirIdentifier{ODSSystem, "A81001"}) || mo.Display != "Test Practice A81001" {
		t.Errorf("managingOrganization = %+v", mo)
	}
	if len(e.PayloadType) != 1 || e.PayloadType[0].Coding[0].System != PayloadTypeSystem || e.PayloadType[0].Text != "referrals" {
		t.Errorf("payloadType = %+v", e.PayloadType)
	}
	if strings.Join(e.PayloadMimeType, " ") != "application/pkcs7-mime message/rfc822" {
		t.Errorf("payloadMimeType = %v", e.PayloadMimeType)
	}
	if e.Period == nil || e.Period.Start == "" || e.Period.End == "" {
		t.Errorf("period = %+v, want the verification's start and expiry", e.Period)
	}
	if len(e.Contact) != 2 || e.Contact[0].System != "email" || e.Contact[1].System != "phone" {
		t.Errorf("contact = %+v", e.Contact)
	}

	// Status mapping and the other shapes.
	for id, want := range map[string]struct{ status, address, connection string }{
		"ep-test-2": {"suspended", "mailto:closed@a81001.nhs.example", "direct-project"},
		"ep-test-3": {"off", "mailto:*@a81001.nhs.example", "direct-project"},
		"ep-test-4": {"off", "mailto:old@a81001.nhs.example", "direct-project"},
		"ep-test-5": {"active", "mailto:results@a81001.nhs.example", "smtp-tls"},
	} {
		e = FHIREndpoint{}
		f.do(t, "GET", "/fhir/Endpoint/"+id, nil).wantFHIR(t, http.StatusOK, &e)
		if e.Status != want.status || e.Address != want.address || e.ConnectionType.Code != want.connection {
			t.Errorf("Endpoint/%s = %s %s %s, want %+v", id, e.Status, e.Address, e.ConnectionType.Code, want)
		}
	}
}

func TestFHIREndpointSearch(t *testing.T) {
	t.Parallel()
	f := fhirFixture(t)
	tests := []struct {
		query string
		ids   string // IDs of the entries, in order
	}{
		{"", "ep-test-3 ep-test-2 ep-test-1 ep-test-6 ep-test-4 ep-test-5"},
		{"identifier=ep-test-2", "ep-test-2"},
		{"identifier=" + url.QueryEscape(EndpointIDSystem+"|ep-test-2"), "ep-test-2"},
		{"identifier=" + url.QueryEscape(ODSSystem+"|b82002"), "ep-test-6"},
		{"identifier=" + url.QueryEscape("https://example.org/other|ep-test-2"), ""},
		{"identifier=ep-none", ""},
		{"organization=Organization/B82002", "ep-test-6"},
		{"organization=B82002", "ep-test-6"},
		{"organization=" + url.QueryEscape(ODSSystem+"|B82002"), "ep-test-6"},
		{"organization=" + url.QueryEscape("https://fhir.example/fhir/Organization/B82002"), "ep-test-6"},
		{"address=" + url.QueryEscape("mailto:gp@a81001.nhs.example"), "ep-test-1"},
		{"address=gp@b82002.nhs.example", "ep-test-6"},
		{"address=" + url.QueryEscape("mailto:*@a81001.nhs.example"), "ep-test-3 ep-test-2 ep-test-1 ep-test-4 ep-test-5"},
		{"status=active", "ep-test-1 ep-test-6 ep-test-5"},
		{"status=off&organization=A81001", "ep-test-3 ep-test-4"},
		{"status=suspended", "ep-test-2"},
		{"organization=A81001&identifier=" + url.QueryEscape(ODSSystem+"|B82002"), ""},
		{"_format=json&identifier=ep-test-1", "ep-test-1"},
		{"_count=10&identifier=ep-test-1", "ep-test-1"},
		{"status=active,suspended&organization=A81001", "ep-test-2 ep-test-1 ep-test-5"},
		{"status=entered-in-error", ""}, // an R4 code this server never gives
		{"status=test,error", ""},
		{"unknown=1&identifier=ep-test-1", "ep-test-1"}, // unsupported, ignored (not strict)
	}
	for _, tc := range tests {
		var b struct {
			ResourceType, Type string
			Total              int
			Link               []bundleLink
			Entry              []struct {
				FullURL  string
				Resource FHIREndpoint
				Search   bundleSearch
			}
		}
		f.do(t, "GET", "/fhir/Endpoint?"+tc.query, nil).wantFHIR(t, http.StatusOK, &b)
		var ids []string
		for _, e := range b.Entry {
			ids = append(ids, e.Resource.ID)
			if e.FullURL != f.srv.URL+"/fhir/Endpoint/"+e.Resource.ID || e.Search.Mode != "match" {
				t.Errorf("?%s: entry fullUrl %q, search %+v", tc.query, e.FullURL, e.Search)
			}
		}
		if got := strings.Join(ids, " "); got != tc.ids || b.Total != len(ids) || b.ResourceType != "Bundle" || b.Type != "searchset" {
			t.Errorf("?%s = %s %s total %d [%s], want [%s]", tc.query, b.ResourceType, b.Type, b.Total, got, tc.ids)
		}
		// One page: self and first, no next; an ignored parameter is not in them.
		if len(b.Link) != 2 || b.Link[0].Relation != "self" || b.Link[1].Relation != "first" || strings.Contains(b.Link[0].URL, "unknown") {
			t.Errorf("?%s: link = %+v", tc.query, b.Link)
		}
	}
}

func TestFHIROrganization(t *testing.T) {
	t.Parallel()
	f := fhirFixture(t)
	var o FHIROrganization
	f.do(t, "GET", "/fhir/Organization/a81001", nil).wantFHIR(t, http.StatusOK, &o)
	if o.ResourceType != "Organization" || o.ID != "A81001" || !o.Active || o.Name != "Test Practice A81001" ||
		len(o.Identifier) != 1 || o.Identifier[0] != (fhirIdentifier{ODSSystem, "A81001"}) {
		t.Errorf("Organization = %+v", o)
	}
	if len(o.Endpoint) != 4 || o.Endpoint[0].Reference != "Endpoint/ep-test-3" {
		t.Errorf("Organization.endpoint = %+v, want the 4 endpoints that are not retired", o.Endpoint)
	}
	if len(o.Type) != 1 || o.Type[0].Coding[0].Code != "gp-practice" {
		t.Errorf("Organization.type = %+v", o.Type)
	}

	var b Bundle
	f.do(t, "GET", "/fhir/Organization?identifier="+url.QueryEscape(ODSSystem+"|B82002"), nil).wantFHIR(t, http.StatusOK, &b)
	if b.Total != 1 {
		t.Errorf("Organization?identifier = %d, want 1", b.Total)
	}
	f.do(t, "GET", "/fhir/Organization?name=test+practice", nil).wantFHIR(t, http.StatusOK, &b)
	if b.Total != 2 {
		t.Errorf("Organization?name = %d, want 2", b.Total)
	}
	f.do(t, "GET", "/fhir/Organization?identifier=other|B82002", nil).wantFHIR(t, http.StatusOK, &b)
	if b.Total != 0 {
		t.Errorf("Organization?identifier=other|… = %d, want 0", b.Total)
	}
}

func TestFHIRErrors(t *testing.T) {
	t.Parallel()
	f := fhirFixture(t)
	tests := []struct {
		name, method, path string
		status             int
		code               string
	}{
		{"unknown endpoint", "GET", "/fhir/Endpoint/ep-nope", 404, "not-found"},
		{"unknown organization", "GET", "/fhir/Organization/Z99999", 404, "not-found"},
		{"bad id", "GET", "/fhir/Endpoint/" + url.PathEscape("ep test!"), 400, "invalid"},
		{"id too long", "GET", "/fhir/Endpoint/" + strings.Repeat("a", 65), 400, "invalid"},
		{"unknown parameter, strict", "GET", "/fhir/Endpoint?name=x", 400, "invalid"},
		{"repeated parameter", "GET", "/fhir/Endpoint?address=a@b.example&address=c@d.example", 400, "invalid"},
		{"bad status", "GET", "/fhir/Endpoint?status=closed", 400, "invalid"},
		{"bad _count", "GET", "/fhir/Endpoint?_count=-1", 400, "invalid"},
		{"bad _offset", "GET", "/fhir/Organization?_offset=x", 400, "invalid"},
		{"bad organization", "GET", "/fhir/Endpoint?organization=" + url.QueryEscape("Organization/A 1"), 400, "invalid"},
		{"bad organization system", "GET", "/fhir/Endpoint?organization=" + url.QueryEscape("urn:x|A81001"), 400, "invalid"},
		{"bad address", "GET", "/fhir/Endpoint?address=" + url.QueryEscape("mailto:%zz"), 400, "invalid"},
		{"xml", "GET", "/fhir/Endpoint?_format=xml", 406, "not-supported"},
		{"read with parameter, strict", "GET", "/fhir/Endpoint/ep-test-1?x=1", 400, "invalid"},
		{"write", "POST", "/fhir/Endpoint", 405, "not-supported"},
		{"delete", "DELETE", "/fhir/Organization/A81001", 405, "not-supported"},
		{"other resource", "GET", "/fhir/Patient/9000000009", 404, "not-found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var oo OperationOutcome
			f.do(t, tc.method, tc.path, nil, "Prefer", "handling=strict").wantFHIR(t, tc.status, &oo)
			if oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 || oo.Issue[0].Severity != "error" ||
				oo.Issue[0].Code != tc.code || oo.Issue[0].Diagnostics == "" {
				t.Errorf("OperationOutcome = %+v, want one error issue %q with diagnostics", oo, tc.code)
			}
		})
	}
}

func TestMailtoURI(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{
		"gp@a81001.nhs.example":      "mailto:gp@a81001.nhs.example",
		"a81001.nhs.example":         "mailto:*@a81001.nhs.example",
		"gp+fax@x.example":           "mailto:gp+fax@x.example",
		"a&b=c%d/e?f#g@x.example":    "mailto:a%26b%3Dc%25d%2Fe%3Ff%23g@x.example",
		"o'brien.j@nhs.example":      "mailto:o'brien.j@nhs.example",
		"\"quoted local\"@x.example": "mailto:%22quoted%20local%22@x.example",
	} {
		if got := mailtoURI(addr); got != want {
			t.Errorf("mailtoURI(%q) = %q, want %q", addr, got, want)
		}
	}
}

// FuzzAddressParam: whatever mailtoURI writes, the address search
// parameter reads back as the same address.
func FuzzAddressParam(f *testing.F) {
	for _, s := range []string{"gp@a81001.nhs.example", "a81001.nhs.example", "a&b=c%d/e?f#g@x.example",
		"", "*@", "%", "mailto:", "\x00@x", "a b@c", "é@ü.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		got, err := addressParam(mailtoURI(addr))
		if err != nil {
			return // addresses with spaces or angle brackets are refused, cleanly
		}
		want := strings.TrimPrefix(addr, "*@")
		if !strings.Contains(addr, "@") {
			want = addr
		}
		if got != want {
			t.Fatalf("addressParam(mailtoURI(%q)) = %q, want %q", addr, got, want)
		}
	})
}

// FuzzOrgParam: any organization parameter either fails cleanly or gives
// a valid FHIR id in upper case.
func FuzzOrgParam(f *testing.F) {
	for _, s := range []string{"A81001", "Organization/A81001", ODSSystem + "|A81001", "|x", "x|", "Organization/",
		"https://h/fhir/Organization/b82002", "a|b|c", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		code, err := orgParam(s)
		if err != nil {
			return
		}
		if validID(code) != nil || code != strings.ToUpper(code) {
			t.Fatalf("orgParam(%q) = %q, not an upper-case FHIR id", s, code)
		}
	})
}
