package timeline_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nhsrelay/audit"
	"nhsrelay/audit/timeline"
)

const (
	qid   = "33QHYRHBKBQHGVEZRTNA2Z3JGC"
	mdnID = "33QHYRHE5YFDW94TRG2T576BXC"
	mid   = "<tok1@practice.nhs.example>"
	ward7 = "ward7@trust.nhs.example"
	card  = "cardio@hosted.nhs.example"
)

// story writes, through a real audit.Log, the events one message leaves
// as the relay records them: accepted for two recipients, sealed, one
// relayed and then confirmed by the receiving relay's DSN, one deferred;
// and a read receipt arriving later as a message of its own.
func story(t *testing.T, path string) {
	t.Helper()
	l, err := audit.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	at := time.Date(2026, 12, 8, 14, 2, 0, 0, time.UTC)
	for i, ev := range []audit.Event{
		{Actor: "riverside", Action: "accepted", QueueID: qid, Outcome: "ok", Detail: audit.WithFields("2 recipient(s), 1234 bytes",
			audit.Fields{"account": "riverside", "client_ip": "127.0.0.1", "size": "1234", "message_id": mid, "rcpts": ward7 + "," + card, "from": "gp@nhs.example"})},
		{Action: "smime.sealed", QueueID: qid, Endpoint: ward7, Outcome: "ok", Detail: audit.WithFields("signed", audit.Fields{"rcpt": ward7, "alg": "SHA-256, AES-256-CBC", "cert_sha256": "ab12"})},
		{Action: "delivered", QueueID: qid, Endpoint: "ep-ward7", Outcome: "ok", Detail: audit.WithFields("accepted by next hop",
			audit.Fields{"rcpt": ward7, "via": "smtp", "remote": "mx.trust.nhs.example", "tls": "TLS 1.3", "reply": "250 2.0.0 Ok: queued as X"})},
		{Action: "deferred", QueueID: qid, Endpoint: "ep-cardio", Outcome: "retry", Detail: audit.WithFields("local mailbox unavailable; will retry", audit.Fields{"rcpt": card})},
		{Action: "accepted", QueueID: "OTHERMESSAGE0000000000000", Outcome: "ok", Detail: audit.WithFields("1 recipient(s)", audit.Fields{"account": "someoneelse", "rcpts": ward7, "message_id": "<other@x>"})},
		{Action: "dsn.received", QueueID: "DSNQUEUEID0000000000000000", Endpoint: "gp@nhs.example", Outcome: "ok", Detail: audit.WithFields("a DSN",
			audit.Fields{"orig_message_id": mid, "reported": ward7, "actions": "delivered 2.0.0", "reporting_mta": "mx.trust.nhs.example"})},
		{Action: "mdn.received", QueueID: mdnID, Endpoint: "gp@nhs.example", Outcome: "ok", Detail: audit.WithFields("displayed",
			audit.Fields{"orig_message_id": mid, "reader": ward7, "disposition": "manual-action/MDN-sent-manually; displayed"})},
	} {
		ev.Time = at.Add(time.Duration(i) * time.Minute)
		if err := l.Record(ev); err != nil {
			t.Fatal(err)
		}
	}
}

// indexedStory writes the story to a new log and returns an Indexer over it.
func indexedStory(t *testing.T) (*timeline.Indexer, string) {
	t.Helper()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "audit.log")
	story(t, logPath)
	return timeline.NewIndexer(openBolt(t, filepath.Join(dir, "timeline.db")), logPath, nil), logPath
}

func TestTimelineFromTheAuditLog(t *testing.T) {
	t.Parallel()
	ix, logPath := indexedStory(t)
	for _, q := range []string{qid, mid, "tok1@practice.nhs.example", card} {
		msgs, err := ix.Find(t.Context(), q, time.Time{})
		if err != nil || len(msgs) != 1 || msgs[0].QueueID != qid {
			t.Fatalf("Find(%q) = %d messages, %v; want the one", q, len(msgs), err)
		}
	}
	msgs, _ := ix.Find(t.Context(), ward7, time.Time{}) // two messages went to ward7
	if len(msgs) != 2 {
		t.Fatalf("Find(%s) = %d messages, want 2", ward7, len(msgs))
	}
	m := msgs[0]
	if m.Account != "riverside" || m.Size != 1234 || m.MessageID != mid || len(m.Events) != 6 {
		t.Errorf("message = %+v", m)
	}
	if strings.Join(m.Have, ",") != ward7 || strings.Join(m.NotYet, ",") != card {
		t.Errorf("have %v, not yet %v; want %s confirmed, %s deferred", m.Have, m.NotYet, ward7, card)
	}
	if r := m.Recipients[0]; !strings.Contains(r.Detail, "confirmed by the receiving relay mx.trust.nhs.example") || !strings.Contains(r.Read, "displayed") {
		t.Errorf("ward7 = %+v", r)
	}
	var out strings.Builder
	timeline.Report(&out, msgs[:1])
	for _, want := range []string{"TRANSMISSION REPORT  queue ID " + qid, "RESULT     1 of 2 recipient(s) have it; 1 not yet",
		"HAS IT    " + ward7 + "  delivered", "not yet   " + card + "  deferred", "tls=TLS 1.3", "mdn.received"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}

	// More events are picked up on the next query; a log replaced by
	// another chain makes the index start again.
	story(t, logPath)
	if msgs, _ := ix.Find(t.Context(), qid, time.Time{}); len(msgs[0].Events) != 12 {
		t.Errorf("after a second story, %d events for %s, want 12", len(msgs[0].Events), qid)
	}
	os.Remove(logPath)
	story(t, logPath)
	if msgs, _ := ix.Find(t.Context(), qid, time.Time{}); len(msgs) != 1 || len(msgs[0].Events) != 6 {
		t.Errorf("after the log was replaced, %d events, want 6 (rebuilt)", len(msgs[0].Events))
	}
}

// TestAPIViewer: an operator sees any message; an account sees only its
// own, and a recipient search shows it only those.
func TestAPIViewer(t *testing.T) {
	t.Parallel()
	ix, _ := indexedStory(t)
	as := func(v *timeline.Viewer, url string) (int, []timeline.Message) {
		req := httptest.NewRequest("GET", url, nil)
		if v != nil {
			req = req.WithContext(timeline.WithViewer(context.Background(), *v))
		}
		rec := httptest.NewRecorder()
		ix.Handler().ServeHTTP(rec, req)
		var body struct{ Messages []timeline.Message }
		json.Unmarshal(rec.Body.Bytes(), &body)
		return rec.Code, body.Messages
	}
	for _, tc := range []struct {
		v    *timeline.Viewer
		url  string
		code int
		n    int
	}{
		{nil, "/v1/messages/" + qid, http.StatusUnauthorized, 0},
		{&timeline.Viewer{Operator: true}, "/v1/messages/" + qid, http.StatusOK, 1},
		{&timeline.Viewer{Account: "riverside"}, "/v1/messages/" + qid, http.StatusOK, 1},
		{&timeline.Viewer{Account: "someoneelse"}, "/v1/messages/" + qid, http.StatusNotFound, 0},
		{&timeline.Viewer{Operator: true}, "/v1/messages?rcpt=" + ward7, http.StatusOK, 2},
		{&timeline.Viewer{Account: "riverside"}, "/v1/messages?rcpt=" + ward7 + "&since=2026-12-08", http.StatusOK, 1},
		{&timeline.Viewer{Operator: true}, "/v1/messages?rcpt=nobody", http.StatusBadRequest, 0},
		{&timeline.Viewer{Operator: true}, "/v1/messages?rcpt=" + ward7 + "&since=yesterday", http.StatusBadRequest, 0},
	} {
		code, msgs := as(tc.v, tc.url)
		if code != tc.code || len(msgs) != tc.n {
			t.Errorf("%+v GET %s = %d with %d messages, want %d with %d", tc.v, tc.url, code, len(msgs), tc.code, tc.n)
		}
	}
}
