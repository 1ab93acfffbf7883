package api

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"nhsrelay/certs/certstest"
	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

func TestEndpointCRUD(t *testing.T) {
	t.Parallel()
	f := start(t, options{}, verified("gp@a81001.nhs.example"))
	const base = "/v1/directory/endpoints"

	var e directory.Endpoint
	r := f.do(t, "POST", base, map[string]any{"address": "Referrals@A81001.nhs.example", "ods": "a81001",
		"purpose": "referrals", "next_hop": map[string]string{"kind": "mx"},
		"fax_numbers": []string{"01632 960001"}, "contacts": []string{"practice.manager@a81001.nhs.example"}}).
		want(t, http.StatusCreated, &e)
	if e.ID == "" || e.Status != directory.StatusPending || e.ODS != "A81001" ||
		!slices.Equal(e.FaxNumbers, []string{"+441632960001"}) {
		t.Errorf("POST = %+v, want a pending endpoint with an ID and an E.164 fax number", e)
	}
	if loc := r.header.Get("Location"); loc != base+"/"+e.ID {
		t.Errorf("Location = %q", loc)
	}
	id := e.ID

	var got directory.Endpoint
	f.do(t, "GET", base+"/"+id, nil).want(t, http.StatusOK, &got)
	if got.ID != id || got.Purpose != "referrals" {
		t.Errorf("GET = %+v", got)
	}

	var list endpointList
	for q, want := range map[string]int{"": 2, "?ods=a81001": 2, "?status=pending": 1, "?status=verified": 1,
		"?address=a81001.nhs.example": 2, "?address=gp@a81001.nhs.example": 1, "?name=test+prac": 2, "?ods=Z99999": 0} {
		list = endpointList{}
		f.do(t, "GET", base+q, nil).want(t, http.StatusOK, &list)
		if len(list.Endpoints) != want {
			t.Errorf("GET %s = %d endpoints, want %d", q, len(list.Endpoints), want)
		}
	}

	// PUT replaces the editable fields (fax numbers and contacts left out are emptied).
	got = directory.Endpoint{}
	f.do(t, "PUT", base+"/"+id, map[string]any{"id": id, "address": "referrals@a81001.nhs.example", "ods": "A81001",
		"purpose": "results", "next_hop": map[string]string{"kind": "host", "host": "mx.a81001.nhs.example:25"}}).
		want(t, http.StatusOK, &got)
	if got.Purpose != "results" || got.NextHop.Host != "mx.a81001.nhs.example:25" || len(got.FaxNumbers) != 0 {
		t.Errorf("PUT = %+v", got)
	}
}

func TestEndpointErrors(t *testing.T) {
	t.Parallel()
	retired := verified("old@a81001.nhs.example")
	retired.Status = directory.StatusRetired
	f := start(t, options{}, verified("gp@a81001.nhs.example"), retired)
	const base = "/v1/directory/endpoints"
	tests := []struct {
		name, method, path, body string
		status                   int
		field                    string
	}{
		{"bad address", "POST", base, `{"address": "not an address", "ods": "A81001"}`, 400, "address"},
		{"unknown organisation", "POST", base, `{"address": "x@y.nhs.example", "ods": "Z99999"}`, 400, "ods"},
		{"bad purpose", "POST", base, `{"address": "x@y.nhs.example", "ods": "A81001", "purpose": "gossip"}`, 400, "purpose"},
		{"bad next hop", "POST", base, `{"address": "x@y.nhs.example", "ods": "A81001", "next_hop": {"kind": "pigeon"}}`, 400, "next_hop.kind"},
		{"plain TLS not loopback", "POST", base, `{"address": "x@y.nhs.example", "ods": "A81001", "next_hop": {"kind": "host", "host": "mx.y.nhs.example:25", "tls": "plain-loopback"}}`, 400, "next_hop.tls"},
		{"bad fax", "POST", base, `{"address": "x@y.nhs.example", "ods": "A81001", "fax_numbers": ["fax me"]}`, 400, "fax_numbers[0]"},
		{"bad certificate", "POST", base, `{"address": "x@y.nhs.example", "ods": "A81001", "certificates": ["AAAA"]}`, 400, "certificates[0]"},
		{"TLS-only without evidence", "POST", base, `{"address": "x@y.nhs.example", "ods": "A81001", "tls_only": true}`, 400, "tls_only_evidence"},
		{"TLS-only hosted", "POST", base, `{"address": "x@y.nhs.example", "ods": "A81001", "next_hop": {"kind": "hosted"}, "tls_only": true, "tls_only_evidence": "CAB 12"}`, 400, "tls_only"},
		{"TLS-only evidence alone", "POST", base, `{"address": "x@y.nhs.example", "ods": "A81001", "tls_only_evidence": "CAB 12"}`, 400, "tls_only_evidence"},
		{"duplicate address", "POST", base, `{"address": "GP@a81001.nhs.example", "ods": "A81001"}`, 400, "address"},
		{"id given", "POST", base, `{"id": "ep-mine", "address": "x@y.nhs.example", "ods": "A81001"}`, 400, "id"},
		{"status given", "POST", base, `{"address": "x@y.nhs.example", "ods": "A81001", "status": "verified"}`, 400, "status"},
		{"verification given", "POST", base, `{"address": "x@y.nhs.example", "ods": "A81001", "verification": {"by": "me"}}`, 400, "verification"},
		{"redirect given", "POST", base, `{"address": "x@y.nhs.example", "ods": "A81001", "redirect": "gp@a81001.nhs.example"}`, 400, "redirect"},
		{"unknown field", "POST", base, `{"address": "x@y.nhs.example", "ods": "A81001", "colour": "blue"}`, 400, "colour"},
		{"wrong type", "POST", base, `{"address": "x@y.nhs.example", "ods": "A81001", "fax_numbers": "01632 960001"}`, 400, "fax_numbers"},
		{"get missing", "GET", base + "/ep-nope", "", 404, ""},
		{"put missing", "PUT", base + "/ep-nope", `{"address": "x@y.nhs.example", "ods": "A81001"}`, 404, ""},
		{"put id mismatch", "PUT", base + "/ep-test-1", `{"id": "ep-test-2", "address": "gp@a81001.nhs.example", "ods": "A81001"}`, 400, "id"},
		{"put invalid", "PUT", base + "/ep-test-1", `{"address": "", "ods": "A81001"}`, 400, "address"},
		{"put status", "PUT", base + "/ep-test-1", `{"address": "gp@a81001.nhs.example", "ods": "A81001", "status": "suspended"}`, 400, "status"},
		{"put retired", "PUT", base + "/ep-test-2", `{"address": "old@a81001.nhs.example", "ods": "A81001"}`, 409, ""},
		{"list bad status", "GET", base + "?status=happy", "", 400, "status"},
		{"list unknown parameter", "GET", base + "?od=A81001", "", 400, "od"},
		{"suspend without reason", "POST", base + "/ep-test-1/suspend", `{}`, 400, "reason"},
		{"suspend blank reason", "POST", base + "/ep-test-1/suspend", `{"reason": "  "}`, 400, "reason"},
		{"suspend control characters", "POST", base + "/ep-test-1/suspend", `{"reason": "a\u0000b"}`, 400, "reason"},
		{"suspend reason too long", "POST", base + "/ep-test-1/suspend", `{"reason": "` + strings.Repeat("r", 300) + `"}`, 400, "reason"},
		{"suspend missing", "POST", base + "/ep-nope/suspend", `{"reason": "x"}`, 404, ""},
		{"retire without reason", "POST", base + "/ep-test-1/retire", `{"reason": ""}`, 400, "reason"},
		{"retire unknown field", "POST", base + "/ep-test-1/retire", `{"why": "x"}`, 400, "why"},
		{"suspend retired", "POST", base + "/ep-test-2/suspend", `{"reason": "x"}`, 409, ""},
		{"attest without evidence", "POST", base + "/ep-test-1/attest", `{}`, 400, "evidence"},
		{"attest retired", "POST", base + "/ep-test-2/attest", `{"evidence": "phoned"}`, 409, ""},
		{"verify without code", "POST", base + "/ep-test-1/verify", `{}`, 400, "code"},
		{"verify with no challenge", "POST", base + "/ep-test-1/verify", `{"code": "123456"}`, 409, ""},
		{"challenge body", "POST", base + "/ep-test-1/challenge", `{"now": true}`, 400, "now"},
		{"challenge missing", "POST", base + "/ep-nope/challenge", ``, 404, ""},
		{"redirect to nowhere", "POST", base + "/ep-test-1/redirect", `{"to": "nobody@nowhere.nhs.example"}`, 400, "to"},
		{"unknown action", "POST", base + "/ep-test-1/delete", `{}`, 404, ""},
		{"action by GET", "GET", base + "/ep-test-1/suspend", "", 405, ""},
	}
	t.Run("requests", func(t *testing.T) { // returns once the parallel subtests end
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				var body any
				if tc.body != "" {
					body = tc.body
				}
				f.do(t, tc.method, tc.path, body).wantError(t, tc.status, tc.field)
			})
		}
	})
	// Nothing above was written.
	eps := f.d.Endpoints(t.Context(), directory.Filter{})
	if len(eps) != 2 || eps[0].Status != directory.StatusVerified || eps[0].Purpose != directory.PurposeGeneral {
		t.Errorf("after refused requests the endpoints are %+v", eps)
	}
}

// Every wrongly typed or unknown field is named in one 400, not only the
// first encoding/json meets; nothing is written.
func TestEndpointErrorsNameEveryField(t *testing.T) {
	t.Parallel()
	f := start(t, options{}, verified("gp@a81001.nhs.example"))
	base := "/v1/directory/endpoints"
	e := f.do(t, "POST", base, `{"address": 7, "ods": "A81001", "tls_only": "yes", "fax_numbers": "0123", "colour": "blue"}`).wantError(t, 400, "address")
	for _, field := range []string{"address", "tls_only", "fax_numbers", "colour"} {
		if e.Fields[field] == "" {
			t.Errorf("fields = %v, want a message for %q", e.Fields, field)
		}
		if !strings.Contains(e.Error, field+":") {
			t.Errorf("error %q does not name %s", e.Error, field)
		}
	}
	if e.Fields["ods"] != "" {
		t.Errorf("a good field was named: %v", e.Fields)
	}
	e = f.do(t, "POST", base, `{"address": "x@y.nhs.example", "ods": "A81001", "next_hop": {"kind": 1, "host": 2}}`).wantError(t, 400, "next_hop.kind")
	if e.Fields["next_hop.kind"] == "" {
		t.Errorf("fields = %v, want next_hop.kind", e.Fields)
	}
	if n := len(f.d.Endpoints(t.Context(), directory.Filter{})); n != 1 {
		t.Errorf("%d endpoints after refused requests, want 1", n)
	}
}

func TestEndpointLifecycle(t *testing.T) {
	t.Parallel()
	f := start(t, options{}, directorytest.Pending("gp@a81001.nhs.example"), verified("other@a81001.nhs.example"))
	ep := "/v1/directory/endpoints/ep-test-1"
	var e directory.Endpoint

	// Challenge: a code goes to the endpoint's address; a wrong code is a field error.
	f.do(t, "POST", ep+"/challenge", nil).want(t, http.StatusAccepted, &e)
	sent := f.mail.Sent()
	if len(sent) != 1 || !slices.Equal(sent[0].To, []string{"gp@a81001.nhs.example"}) {
		t.Fatalf("challenge mail = %+v, want one to the endpoint", sent)
	}
	code := directorytest.Code(sent[0])
	if code == "" {
		t.Fatalf("no code in the challenge mail:\n%s", sent[0].Data)
	}
	f.do(t, "POST", ep+"/verify", map[string]string{"code": "000000-wrong"}).wantError(t, http.StatusBadRequest, "code")
	f.do(t, "POST", ep+"/verify", map[string]string{"code": code}, "X-Test-Actor", "bob").want(t, http.StatusOK, &e)
	if e.Status != directory.StatusVerified || e.Verification.Method != directory.MethodChallenge || e.Verification.By != "bob" {
		t.Errorf("after verify = %s %+v, want verified by challenge, by bob", e.Status, e.Verification)
	}

	e = directory.Endpoint{}
	f.do(t, "POST", ep+"/suspend", map[string]string{"reason": "mailbox full of spam"}).want(t, http.StatusOK, &e)
	if e.Status != directory.StatusSuspended || e.StatusReason != "mailbox full of spam" {
		t.Errorf("after suspend = %s %q", e.Status, e.StatusReason)
	}

	// Attestation: the actor from the admin middleware is who verified.
	e = directory.Endpoint{}
	f.do(t, "POST", ep+"/attest", map[string]string{"evidence": "phoned the practice manager on 01632 960000"}).
		want(t, http.StatusOK, &e)
	if e.Status != directory.StatusVerified || e.Verification.By != "alice" || e.Verification.Method != directory.MethodAttestation {
		t.Errorf("after attest = %s %+v, want verified by alice's attestation", e.Status, e.Verification)
	}

	e = directory.Endpoint{}
	f.do(t, "POST", ep+"/redirect", map[string]string{"to": "other@a81001.nhs.example"}).want(t, http.StatusOK, &e)
	if e.Redirect == "" {
		t.Errorf("after redirect = %+v, want a redirect", e)
	}
	e = directory.Endpoint{}
	f.do(t, "POST", ep+"/redirect", map[string]string{"to": ""}).want(t, http.StatusOK, &e)
	if e.Redirect != "" {
		t.Errorf("after removing the redirect = %q", e.Redirect)
	}

	e = directory.Endpoint{}
	f.do(t, "POST", ep+"/retire", map[string]string{"reason": "practice merged"}).want(t, http.StatusOK, &e)
	if e.Status != directory.StatusRetired {
		t.Errorf("after retire = %s", e.Status)
	}

	// Every step was audited under the actor the middleware set.
	var actors []string
	for _, ev := range f.audit.Events() {
		if !slices.Contains(actors, ev.Actor) {
			actors = append(actors, ev.Actor)
		}
	}
	slices.Sort(actors)
	if !slices.Equal(actors, []string{"alice", "bob"}) {
		t.Errorf("audit actors = %v, want alice and bob only", actors)
	}
}

func TestChallengeWithoutMailer(t *testing.T) {
	t.Parallel()
	f := start(t, options{noMailer: true}, directorytest.Pending("gp@a81001.nhs.example"))
	f.do(t, "POST", "/v1/directory/endpoints/ep-test-1/challenge", `{}`).wantError(t, http.StatusServiceUnavailable, "")
}

func TestPutCertificates(t *testing.T) {
	t.Parallel()
	f := start(t, options{}, directorytest.Verified("gp@a81001.nhs.example", directory.NextHop{Kind: directory.HopMX}))
	const path = "/v1/directory/endpoints/ep-test-1/certificates"
	ca := certstest.NewCA(t)
	cert, _ := ca.SMIMECertificate(t, "gp@a81001.nhs.example")

	var e directory.Endpoint
	f.do(t, "PUT", path, map[string]any{"certificates": [][]byte{cert.Raw, ca.Cert.Raw}}).want(t, http.StatusOK, &e)
	if len(e.Certificates) != 2 || e.Status != directory.StatusVerified {
		t.Fatalf("PUT certificates = %d certificates, %s", len(e.Certificates), e.Status)
	}
	if evs := f.audit.Events(); len(evs) == 0 || evs[len(evs)-1].Action != "endpoint.certificates" || evs[len(evs)-1].Actor != "alice" {
		t.Errorf("audit = %v", f.audit.Actions())
	}
	f.do(t, "PUT", path, `{}`).wantError(t, http.StatusBadRequest, "certificates")
	f.do(t, "PUT", path, `{"certificates": ["AAAA"]}`).wantError(t, http.StatusBadRequest, "certificates[0]")
	f.do(t, "PUT", path, `{"certificates": [], "tls_only": true}`).wantError(t, http.StatusBadRequest, "tls_only")
	f.do(t, "PUT", "/v1/directory/endpoints/ep-nope/certificates", `{"certificates": []}`).wantError(t, http.StatusNotFound, "")
	e = directory.Endpoint{}
	f.do(t, "PUT", path, `{"certificates": []}`).want(t, http.StatusOK, &e)
	if len(e.Certificates) != 0 {
		t.Errorf("PUT [] left %d certificates", len(e.Certificates))
	}
}
