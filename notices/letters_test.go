package notices_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"nhsrelay/notices"
	"nhsrelay/relay"
	"nhsrelay/relay/dsn"
)

func (h *harness) adminDo(t *testing.T, method, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, h.admin.URL+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// checkLetterPDF checks a print run's PDF with poppler: A4 pages, and the
// patient's address inside the window area.
func checkLetterPDF(t *testing.T, pdf []byte, pages int, address ...string) {
	t.Helper()
	path := writeFile(t, "run.pdf", pdf)
	info := string(run(t, nil, "pdfinfo", path))
	if !strings.Contains(info, "x 841.89 pts (A4)") || !strings.Contains(info, "Pages:           "+strconv.Itoa(pages)) {
		t.Fatalf("pdfinfo:\n%s\nwant %d A4 pages", info, pages)
	}
	// The window: x 24.6–120 mm, y 39.5–66.3 mm, in points at 72 dpi.
	mm := 72 / 25.4
	crop := []string{"-f", "1", "-l", "1", "-r", "72",
		"-x", strconv.Itoa(int(24.6 * mm)), "-y", strconv.Itoa(int(39.5 * mm)),
		"-W", strconv.Itoa(int((120 - 24.6) * mm)), "-H", strconv.Itoa(int((66.3 - 39.5) * mm)), path, "-"}
	window := string(run(t, nil, "pdftotext", crop...))
	for _, a := range address {
		if !strings.Contains(window, a) {
			t.Fatalf("window area reads %q, want it to hold %q", window, a)
		}
	}
	if strings.Contains(window, "Riverside Medical Practice") {
		t.Fatalf("the sender's name is inside the window area: %q", window)
	}
}

func TestHardBounceBecomesALetter(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	h.sink.SetRcpt(func(to string) error {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"}
	})
	if code, out, _ := h.post(t, h.token, request("BNC-1", h.clock.Now().Add(72*time.Hour), nil)); code != http.StatusCreated {
		t.Fatalf("POST = %d %v", code, out)
	}
	st := h.waitStatus(t, "BNC-1", "status", "letter-queued")
	if st["email_status"] != "permanent-failure" || !hasStatus(st, "permanent-failure") {
		t.Fatalf("status %v, want permanent-failure then letter-queued", st)
	}
	code, body := h.adminDo(t, http.MethodGet, "/v1/letters?status=pending")
	if code != http.StatusOK || !strings.Contains(string(body), `"BNC-1"`) {
		t.Fatalf("pending letters = %d %s", code, body)
	}
	// Before the day's cut-off the letter waits; after it, the run has it.
	h.clock.Advance(25 * time.Hour)
	code, body = h.adminDo(t, http.MethodPost, "/v1/letters/print-runs")
	if code != http.StatusOK {
		t.Fatalf("print run = %d %s", code, body)
	}
	var run notices.PrintRun
	json.Unmarshal(body, &run)
	if len(run.References) != 1 || run.References[0] != "BNC-1" {
		t.Fatalf("run %+v, want BNC-1", run)
	}
	code, pdf := h.adminDo(t, http.MethodGet, "/v1/letters/print-runs/"+run.ID+"/pdf")
	if code != http.StatusOK || !bytes.HasPrefix(pdf, []byte("%PDF")) {
		t.Fatalf("PDF = %d", code)
	}
	checkLetterPDF(t, pdf, 1, "Ada Lovelace", "12 Analytical Row", "Leeds", "LS2 9JT")
	// In its run it can no longer be cancelled.
	if code, _ := h.adminDo(t, http.MethodDelete, "/v1/letters/BNC-1"); code != http.StatusConflict {
		t.Fatalf("cancel in a run = %d, want 409", code)
	}
	if code, body := h.adminDo(t, http.MethodPost, "/v1/letters/print-runs/"+run.ID+"/printed"); code != http.StatusOK {
		t.Fatalf("printed = %d %s", code, body)
	}
	if st := h.status(t, "BNC-1"); st["status"] != "letter-printed" || st["letter_status"] != "printed" {
		t.Fatalf("after printing: %v", st)
	}
}

func TestLetterWhenNoEmailAndCancelBeforeRun(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	for _, ref := range []string{"POST-1", "POST-2"} {
		body := request(ref, h.clock.Now().Add(72*time.Hour), func(r map[string]any) { delete(r["patient"].(map[string]any), "email") })
		if code, out, _ := h.post(t, h.token, body); code != http.StatusCreated || out["status"] != "letter-queued" {
			t.Fatalf("POST %s = %d %v, want 201 letter-queued", ref, code, out)
		}
	}
	if code, _ := h.adminDo(t, http.MethodDelete, "/v1/letters/POST-2"); code != http.StatusOK {
		t.Fatalf("cancel pending letter = %d", code)
	}
	h.clock.Advance(25 * time.Hour)
	_, body := h.adminDo(t, http.MethodPost, "/v1/letters/print-runs")
	var run notices.PrintRun
	json.Unmarshal(body, &run)
	if len(run.References) != 1 || run.References[0] != "POST-1" {
		t.Fatalf("run %s, want POST-1 only (POST-2 cancelled)", body)
	}
	if len(h.sink.Messages()) != 0 {
		t.Fatal("an email was sent for a notice without an email address")
	}
}

// A DSN that comes after the MX accepted the email: recorded, the email
// status stays delivered (the first final status wins), a letter goes.
func TestLateBounceRecordedAndLetterQueued(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	h.post(t, h.token, request("LATE-1", h.clock.Now().Add(72*time.Hour), nil))
	h.waitStatus(t, "LATE-1", "status", "delivered")
	verp := h.sink.Messages()[0].From
	var b bytes.Buffer
	err := dsn.Write(&b, dsn.Report{ReportingMTA: "mx.example.org", From: "MAILER-DAEMON@mx.example.org", To: verp,
		Date: time.Now(), MessageID: "b1@mx.example.org",
		Recipients: []dsn.Recipient{{FinalRecipient: "ada@example.org", Action: dsn.Failed, Status: "5.1.1",
			DiagnosticType: "smtp", Diagnostic: "550 5.1.1 mailbox unknown"}}})
	if err != nil {
		t.Fatal(err)
	}
	bh := h.svc.BounceHandler()
	if !bh.Accepts(verp) || bh.Accepts("bounce+nope@elsewhere.example") || bh.Accepts("reception@"+hostname) {
		t.Fatal("Accepts answers wrongly")
	}
	if _, err := bh.Handle(context.Background(), relay.Envelope{Recipients: []string{verp}}, &b); err != nil {
		t.Fatal(err)
	}
	st := h.status(t, "LATE-1")
	if st["email_status"] != "delivered" || st["status"] != "letter-queued" || !hasStatus(st, "recorded") {
		t.Fatalf("after a late bounce: %v", st)
	}
}

func TestWebhooksSignedRetriedInSequence(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []notices.WebhookBody
	var secret string
	fail := 1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts, _ := strconv.ParseInt(r.Header.Get(notices.HeaderTimestamp), 10, 64)
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get(notices.HeaderSignature) != notices.Sign(secret, ts, body) {
			t.Errorf("bad signature on %s", body)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if fail > 0 {
			fail--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var wb notices.WebhookBody
		json.Unmarshal(body, &wb)
		if r.Header.Get(notices.HeaderIdempotencyKey) != wb.Key {
			t.Errorf("Idempotency-Key %q, body key %q", r.Header.Get(notices.HeaderIdempotencyKey), wb.Key)
		}
		got = append(got, wb)
	}))
	defer srv.Close()
	h := start(t, nil)
	c, tok, err := h.svc.AddCredential(t.Context(), "Hooked PAS", []string{"A81001"}, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_ = c
	mu.Lock()
	secret = webhookSecret(t, h, c.ID)
	mu.Unlock()
	h.post(t, tok, request("HOOK-1", h.clock.Now().Add(72*time.Hour), nil))
	h.waitStatus(t, "HOOK-1", "status", "delivered")
	deadline := time.Now().Add(20 * time.Second)
	for {
		h.clock.Advance(31 * time.Second) // past the retry delay of the refused first attempt
		h.svc.Kick()
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook got %d events, want created, sending, delivered", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	seen := map[notices.Status]int{}
	for _, e := range got {
		seen[e.Status] = e.Sequence
	}
	if seen["created"] >= seen["sending"] || seen["sending"] >= seen["delivered"] {
		t.Fatalf("sequence numbers %v, want increasing created < sending < delivered", seen)
	}
}

// webhookSecret reads a credential's webhook secret from the store, as an
// operator is shown it once by the admin API.
func webhookSecret(t *testing.T, h *harness, id string) string {
	cs, err := h.store.Credentials(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.ID == id {
			return c.WebhookSecret
		}
	}
	t.Fatal("credential not stored")
	return ""
}

// An email outside the organisation's sending window waits until it
// opens.
func TestSendingWindowHoldsEmails(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *notices.Config) {
		// A window of one hour starting two hours from the harness clock.
		now := c.Now().In(london(t))
		from := now.Add(2 * time.Hour).Truncate(time.Hour)
		w, err := notices.ParseWindow(from.Format("15:04") + "-" + from.Add(time.Hour).Format("15:04"))
		if err != nil {
			t.Fatal(err)
		}
		c.Orgs["A81001"] = notices.OrgSettings{From: fromAddr, Window: w}
	})
	if code, out, _ := h.post(t, h.token, request("WIN-1", h.clock.Now().Add(72*time.Hour), nil)); code != http.StatusCreated {
		t.Fatalf("POST = %d %v", code, out)
	}
	time.Sleep(1500 * time.Millisecond) // the dispatcher runs at least once
	if st := h.status(t, "WIN-1"); st["status"] != "created" || len(h.sink.Messages()) != 0 {
		t.Fatalf("before the window: %v, %d emails; want created, none", st["status"], len(h.sink.Messages()))
	}
	h.clock.Advance(2*time.Hour + time.Minute)
	h.svc.Kick()
	h.waitStatus(t, "WIN-1", "status", "delivered")
}

func london(t *testing.T) *time.Location {
	l, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	return l
}
