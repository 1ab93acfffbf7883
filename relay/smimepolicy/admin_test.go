package smimepolicy_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"nhsrelay/relay/smimepolicy"
)

// adminGet is GET path from srv: status, body.
func adminGet(t *testing.T, srv *httptest.Server, path string) (int, []byte) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q, want application/json", path, ct)
	}
	return resp.StatusCode, b
}

// TestAdminHandler: the quarantine API lists and shows records — never
// the message — and answers an unknown ID with a JSON 404.
func TestAdminHandler(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	srv := httptest.NewServer(f.p.AdminHandler()) // 127.0.0.1:0
	t.Cleanup(srv.Close)

	code, b := adminGet(t, srv, "/v1/quarantine")
	if code != http.StatusOK || strings.TrimSpace(string(b)) != "[]" {
		t.Errorf("GET /v1/quarantine (empty) = %d %s, want 200 []", code, b)
	}

	// A plain message for the hosted endpoint is quarantined.
	m := inbound("Q1")
	_, err := f.open(m, message(senderAddr, hostedAddr, "tokADMIN"))
	var qe *smimepolicy.QuarantineError
	if !errors.As(err, &qe) {
		t.Fatalf("Open(plain) = %v, want a quarantine", err)
	}

	code, b = adminGet(t, srv, "/v1/quarantine")
	var recs []smimepolicy.Record
	if err := json.Unmarshal(b, &recs); code != http.StatusOK || err != nil || len(recs) != 1 {
		t.Fatalf("GET /v1/quarantine = %d %s (%v), want one record", code, b, err)
	}
	rec := recs[0]
	if rec.ID != qe.ID || rec.QueueID != "Q1" || rec.Endpoint != hostedAddr || rec.From != senderAddr ||
		rec.ClientIP != "192.0.2.7" || rec.At.IsZero() || rec.Reason != qe.Reason || rec.Reason == "" {
		t.Errorf("record = %+v, want ID %s for Q1 from %s to %s, reason %q", rec, qe.ID, senderAddr, hostedAddr, qe.Reason)
	}
	for _, leak := range []string{"tokADMIN", "Haemoglobin", "blood results"} {
		if strings.Contains(string(b), leak) {
			t.Errorf("list quotes the message (%q): %s", leak, b)
		}
	}

	code, b = adminGet(t, srv, "/v1/quarantine/"+qe.ID)
	var one smimepolicy.Record
	if err := json.Unmarshal(b, &one); code != http.StatusOK || err != nil || one != rec {
		t.Errorf("GET /v1/quarantine/%s = %d %s (%v), want %+v", qe.ID, code, b, err, rec)
	}
	if strings.Contains(string(b), "tokADMIN") {
		t.Errorf("record quotes the message: %s", b)
	}

	for _, path := range []string{"/v1/quarantine/NOPE", "/v1/quarantine/..%2F..%2Fkeys", "/v1/quarantine/" + qe.ID + ".json"} {
		code, b = adminGet(t, srv, path)
		var e struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal(b, &e); code != http.StatusNotFound || err != nil || e.Error == "" {
			t.Errorf("GET %s = %d %s, want 404 with a JSON error", path, code, b)
		}
	}

	// No content download and no changes through this API.
	resp, err := srv.Client().Post(srv.URL+"/v1/quarantine/"+qe.ID, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /v1/quarantine/{id} = %d, want 405", resp.StatusCode)
	}
	code, b = adminGet(t, srv, "/v1/quarantine/"+qe.ID+"/message")
	if code != http.StatusNotFound || strings.Contains(string(b), "tokADMIN") {
		t.Errorf("GET /v1/quarantine/{id}/message = %d %s, want 404: no content route", code, b)
	}
}
