package api

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"

	"nhsrelay/certs/certstest"
	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

// r4Valid checks body with Google's FHIR R4 JSON parser (an implementation
// we did not write), with its extended validation on: every element known
// to R4, required elements present, codes from the required value sets,
// dates and base64 well formed.
func r4Valid(t *testing.T, what string, body []byte) {
	t.Helper()
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Unmarshal(body); err != nil {
		t.Errorf("%s is not valid FHIR R4: %v\n%s", what, err, body)
	}
}

// federationFixture: a hosted endpoint with a certificate, a hosted one
// without, a remote one, and 250 organisations for paging; B82002 closed
// with a successor (its endpoint suspended by the closure).
func federationFixture(t *testing.T) (*fixture, []byte) {
	hosted := directorytest.Verified("referrals@a81001.nhs.example", directory.NextHop{Kind: directory.HopHosted})
	cert, _ := certstest.NewCA(t).SMIMECertificate(t, hosted.Address)
	hosted.Certificates = [][]byte{cert.Raw}
	bare := directorytest.Verified("reception@a81001.nhs.example", directory.NextHop{Kind: directory.HopHosted})
	remote := directorytest.Verified("gp@b82002.nhs.example", directory.NextHop{Kind: directory.HopMX})
	remote.ODS = "B82002"
	f := start(t, options{nextHop: "mx.a81001.nhs.example:25"}, hosted, bare, remote)
	ctx := t.Context()
	for i := range 250 {
		if err := f.d.PutOrganisation(ctx, directory.Organisation{ODS: fmt.Sprintf("Y%05d", i), Name: fmt.Sprintf("Practice %03d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	closed := time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)
	if err := f.d.PutOrganisation(ctx, directory.Organisation{ODS: "B82002", Name: "Closed Practice",
		Status: directory.OrgClosed, ClosedOn: closed, Successor: "A81001"}); err != nil {
		t.Fatal(err)
	}
	return f, cert.Raw
}

func TestFHIRFederationFields(t *testing.T) {
	t.Parallel()
	f, der := federationFixture(t)

	var e FHIREndpoint
	r := f.do(t, "GET", "/fhir/Endpoint/ep-test-1", nil).wantFHIR(t, http.StatusOK, &e)
	r4Valid(t, "hosted Endpoint", r.body)
	var certs, hops []string
	for _, x := range e.Extension {
		switch x.URL {
		case ExtSMIMECertificate:
			certs = append(certs, x.ValueBase64Binary)
		case ExtNextHop:
			hops = append(hops, x.ValueString)
		}
	}
	if len(certs) != 1 || certs[0] != base64.StdEncoding.EncodeToString(der) {
		t.Errorf("certificate extensions = %v, want the endpoint's one certificate", certs)
	}
	if len(hops) != 1 || hops[0] != "mx.a81001.nhs.example:25" {
		t.Errorf("next-hop extensions = %v, want the published MX", hops)
	}
	if strings.Join(e.PayloadMimeType, " ") != "application/pkcs7-mime message/rfc822" {
		t.Errorf("with a certificate: payloadMimeType = %v", e.PayloadMimeType)
	}

	// Hosted, no certificate: not advertised as taking S/MIME.
	e = FHIREndpoint{}
	r = f.do(t, "GET", "/fhir/Endpoint/ep-test-2", nil).wantFHIR(t, http.StatusOK, &e)
	r4Valid(t, "hosted Endpoint without certificate", r.body)
	if strings.Join(e.PayloadMimeType, " ") != "message/rfc822" {
		t.Errorf("without a certificate: payloadMimeType = %v, want only message/rfc822", e.PayloadMimeType)
	}

	// Suspended by its organisation's closure: the period ends then; a
	// remote endpoint publishes no next hop.
	e = FHIREndpoint{}
	r = f.do(t, "GET", "/fhir/Endpoint/ep-test-3", nil).wantFHIR(t, http.StatusOK, &e)
	r4Valid(t, "suspended Endpoint", r.body)
	ep, err := f.d.Endpoint(t.Context(), "ep-test-3")
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != "suspended" || ep.StatusAt.IsZero() || e.Period == nil || e.Period.End != fhirTime(ep.StatusAt) {
		t.Errorf("suspended endpoint: status %s, period %+v, want it to end at the suspension %s", e.Status, e.Period, ep.StatusAt)
	}
	for _, x := range e.Extension {
		if x.URL == ExtNextHop {
			t.Errorf("remote endpoint publishes a next hop: %+v", x)
		}
	}

	// Closed organisation: active false, closure date, successor.
	var o FHIROrganization
	r = f.do(t, "GET", "/fhir/Organization/B82002", nil).wantFHIR(t, http.StatusOK, &o)
	r4Valid(t, "closed Organization", r.body)
	var closedOn, successor string
	for _, x := range o.Extension {
		switch x.URL {
		case ExtClosedOn:
			closedOn = x.ValueDate
		case ExtReplacedBy:
			if x.ValueReference != nil {
				successor = x.ValueReference.Reference
			}
		}
	}
	if o.Active || closedOn != "2026-03-31" || successor != "Organization/A81001" {
		t.Errorf("closed organisation: active %v, closed-on %q, replaced-by %q", o.Active, closedOn, successor)
	}

	// Every R4 status code is a valid search; an unknown one is an
	// OperationOutcome, valid R4 too.
	for _, st := range fhirStatuses {
		r = f.do(t, "GET", "/fhir/Endpoint?status="+st, nil).wantFHIR(t, http.StatusOK, nil)
		r4Valid(t, "search status="+st, r.body)
	}
	r = f.do(t, "GET", "/fhir/Endpoint?status=closed", nil).wantFHIR(t, http.StatusBadRequest, nil)
	r4Valid(t, "OperationOutcome", r.body)
}

// TestFHIRPaging: 252 organisations come back in pages of _count, linked
// by next, each a valid R4 Bundle, and together every organisation once.
func TestFHIRPaging(t *testing.T) {
	t.Parallel()
	f, _ := federationFixture(t)
	next := "/fhir/Organization?_count=100"
	seen := map[string]bool{}
	pages := 0
	for next != "" && pages < 10 {
		var b struct {
			Total int
			Link  []bundleLink
			Entry []struct{ Resource FHIROrganization }
		}
		r := f.do(t, "GET", next, nil).wantFHIR(t, http.StatusOK, &b)
		r4Valid(t, "page "+next, r.body)
		pages++
		if b.Total != 252 || len(b.Entry) > 100 {
			t.Fatalf("page %d: total %d, %d entries; want total 252, at most 100", pages, b.Total, len(b.Entry))
		}
		for _, e := range b.Entry {
			if seen[e.Resource.ID] {
				t.Errorf("%s on two pages", e.Resource.ID)
			}
			seen[e.Resource.ID] = true
		}
		next = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				next = strings.TrimPrefix(l.URL, f.srv.URL)
			}
		}
	}
	if pages != 3 || len(seen) != 252 {
		t.Errorf("%d pages, %d organisations; want 3 and 252", pages, len(seen))
	}
	// Without _count a search is still one page of the default size.
	var b struct{ Entry []any }
	f.do(t, "GET", "/fhir/Organization", nil).wantFHIR(t, http.StatusOK, &b)
	if len(b.Entry) != defaultFHIRCount {
		t.Errorf("default page: %d entries, want %d", len(b.Entry), defaultFHIRCount)
	}
	// _count past the maximum is clipped, not refused (R4 §3.1.1.5.7).
	f.do(t, "GET", "/fhir/Endpoint?_count=100000", nil).wantFHIR(t, http.StatusOK, nil)
}

// TestFHIRAuthOutcome: a request without the right token gets a 401 that
// is an R4 OperationOutcome, with the Bearer challenge.
func TestFHIRAuthOutcome(t *testing.T) {
	t.Parallel()
	f, _ := federationFixture(t)
	h := FHIRAuth(func(tok string) bool { return tok == "right-token-123456" }, f.srv.Config.Handler)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	for _, auth := range []string{"", "Bearer wrong", "Basic eDp5"} {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/fhir/Endpoint", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r := readResponse(t, resp)
		if r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") ||
			r.header.Get("Content-Type") != fhirJSON || !strings.Contains(string(r.body), `"OperationOutcome"`) {
			t.Errorf("Authorization %q: %d %v %s", auth, r.status, r.header, r.body)
		}
		r4Valid(t, "401 OperationOutcome", r.body)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/fhir/Endpoint", nil)
	req.Header.Set("Authorization", "Bearer right-token-123456")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if r := readResponse(t, resp); r.status != http.StatusOK {
		t.Errorf("right token: %d %s", r.status, r.body)
	}
}

// TestFHIRPagingSeesWrites: the list kept for paging is dropped by any
// write, so a page read after a change shows it.
func TestFHIRPagingSeesWrites(t *testing.T) {
	t.Parallel()
	f, _ := federationFixture(t)
	count := func() int {
		var b struct{ Total int }
		f.do(t, "GET", "/fhir/Endpoint?_count=1", nil).wantFHIR(t, http.StatusOK, &b)
		return b.Total
	}
	before := count()
	if _, err := f.d.AddEndpoint(t.Context(), directory.Endpoint{Address: "new@a81001.nhs.example", ODS: "A81001"}); err != nil {
		t.Fatal(err)
	}
	if after := count(); after != before+1 {
		t.Errorf("total after adding an endpoint = %d, want %d", after, before+1)
	}
}
