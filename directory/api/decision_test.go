package api

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

// One answer with S/MIME required (as serve runs): a verified remote
// endpoint without a certificate is refused by RCPT, NO from
// /v1/directory/check and not "active" in FHIR; a verified hosted endpoint
// without one is accepted everywhere.
func TestOneAnswerAPIAndFHIR(t *testing.T) {
	t.Parallel()
	remote := directorytest.Verified("remote@a81001.nhs.example", directory.NextHop{Kind: directory.HopMX})
	hosted := directorytest.Verified("hosted@a81001.nhs.example", directory.NextHop{Kind: directory.HopHosted})
	d := directorytest.Open(t, func(c *directory.Config) { c.HashCost, c.RequireSMIME = bcrypt.MinCost, true }, remote, hosted)
	srv := httptest.NewServer(newServer(d, slog.New(slog.NewTextHandler(t.Output(), nil)), maxJSONBody, maxCSVBody).mux)
	t.Cleanup(srv.Close)
	f := &fixture{d: d, srv: srv}
	for addr, wantOK := range map[string]bool{remote.Address: false, hosted.Address: true} {
		var check directory.CheckResult
		f.do(t, "GET", "/v1/directory/check?"+url.Values{"address": {addr}}.Encode(), nil).want(t, http.StatusOK, &check)
		_, rcptErr := d.CheckRecipient(t.Context(), addr)
		e, _ := d.Lookup(t.Context(), addr)
		var fe FHIREndpoint
		f.do(t, "GET", "/fhir/Endpoint/"+e.ID, nil).wantFHIR(t, http.StatusOK, &fe)
		if check.OK != wantOK || (rcptErr == nil) != wantOK || (fe.Status == "active") != wantOK {
			t.Errorf("%s: check OK %v %v, RCPT %v, FHIR status %q; want all to say %v", addr, check.OK, check.Reasons, rcptErr, fe.Status, wantOK)
		}
	}
}
