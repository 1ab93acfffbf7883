package smimepolicy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"nhsrelay/audit"
	"nhsrelay/relay/smimepolicy"
)

// adminPost is POST path with body from srv: status, body.
func adminPost(t *testing.T, srv *httptest.Server, path, body string) (int, string) {
	t.Helper()
	resp, err := srv.Client().Post(srv.URL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// TestQuarantineReleaseAndDelete: through the admin API, an administrator
// releases one quarantined message — it reaches the endpoint's mailbox as
// it arrived, with a header naming why it was quarantined, who released it
// and why, and no trace header claiming a verification — and deletes
// another; both are audited with the actor and leave the quarantine.
func TestQuarantineReleaseAndDelete(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	h := f.p.AdminHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(audit.WithActor(r.Context(), "admin alice")))
	}))
	t.Cleanup(srv.Close)

	ids := map[string]string{}
	for _, tok := range []string{"tokREL", "tokDEL"} {
		var qe *smimepolicy.QuarantineError
		if _, err := f.open(inbound("Q-"+tok), message(senderAddr, hostedAddr, tok)); !errors.As(err, &qe) {
			t.Fatalf("Open(plain %s) = %v, want a quarantine", tok, err)
		}
		ids[tok] = qe.ID
	}
	for _, tc := range []struct {
		path, body string
		code       int
		want       string
	}{
		{"/v1/quarantine/" + ids["tokREL"] + "/release", `{}`, http.StatusBadRequest, `"reason"`},
		{"/v1/quarantine/" + ids["tokREL"] + "/release", `{"reason": "x", "extra": 1}`, http.StatusBadRequest, "unknown field"},
		{"/v1/quarantine/no-such-id/release", `{"reason": "x"}`, http.StatusNotFound, "no quarantined message"},
		{"/v1/quarantine/" + ids["tokREL"] + "/publish", `{"reason": "x"}`, http.StatusNotFound, "release or delete"},
	} {
		if code, body := adminPost(t, srv, tc.path, tc.body); code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("POST %s %s = %d %s, want %d with %q", tc.path, tc.body, code, body, tc.code, tc.want)
		}
	}

	code, body := adminPost(t, srv, "/v1/quarantine/"+ids["tokREL"]+"/release", `{"reason": "sender phoned: certificate renewal in progress"}`)
	if code != http.StatusOK || !strings.Contains(body, ids["tokREL"]) {
		t.Fatalf("release = %d %s", code, body)
	}
	got := mailbox(t, filepath.Join(f.mail, hostedAddr), "R"+ids["tokREL"])
	if len(got) != 1 {
		t.Fatalf("mailbox has %d released messages, want 1", len(got))
	}
	hdr, _, _ := strings.Cut(got[0], "\r\n\r\n")
	for _, want := range []string{smimepolicy.ReleasedHeader + ": id=" + ids["tokREL"], `quarantined="the message was not S/MIME encrypted`,
		`released-by="admin alice"`, `why="sender phoned: certificate renewal in progress"`, "Subject: blood results for patient tokREL"} {
		if !strings.Contains(hdr, want) {
			t.Errorf("released message header lacks %q:\n%s", want, hdr)
		}
	}
	if strings.Contains(strings.ToLower(hdr), strings.ToLower(smimepolicy.TraceHeader)+":") || !strings.Contains(got[0], "Haemoglobin normal. tokREL") {
		t.Errorf("released message carries a trace header or lost its body:\n%s", got[0])
	}

	if code, body := adminPost(t, srv, "/v1/quarantine/"+ids["tokDEL"]+"/delete", `{"reason": "spam from a misconfigured system"}`); code != http.StatusOK {
		t.Fatalf("delete = %d %s", code, body)
	}
	if n := len(mailbox(t, filepath.Join(f.mail, hostedAddr), "R"+ids["tokDEL"])); n != 0 {
		t.Errorf("a deleted message reached the mailbox")
	}
	code, b := adminGet(t, srv, "/v1/quarantine")
	var recs []smimepolicy.Record
	if err := json.Unmarshal(b, &recs); code != http.StatusOK || err != nil || len(recs) != 0 {
		t.Errorf("quarantine after release and delete = %d %s, want empty", code, b)
	}
	for action, why := range map[string]string{"smime.quarantine_released": "certificate renewal", "smime.quarantine_deleted": "misconfigured"} {
		evs := f.audit.Find(action)
		if len(evs) != 1 || evs[0].Actor != "admin alice" || !strings.Contains(evs[0].Detail, why) || strings.Contains(evs[0].Detail, "Haemoglobin") {
			t.Errorf("%s events = %+v", action, evs)
		}
	}
	if code, _ := adminPost(t, srv, "/v1/quarantine/"+ids["tokREL"]+"/release", `{"reason": "again"}`); code != http.StatusNotFound {
		t.Errorf("second release = %d, want 404", code)
	}
}
