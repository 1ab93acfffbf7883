package faxbridge

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func upload(t *testing.T, url, token string, file []byte, fields map[string]string) (int, map[string]any) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	if file != nil {
		fw, _ := mw.CreateFormFile("file", "fax.tif")
		fw.Write(file)
	}
	mw.Close()
	req, _ := http.NewRequest("POST", url+"/v1/faxes", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestUploadEndToEnd(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	srv := httptest.NewServer(w.bridge.UploadHandler(200 << 10))
	defer srv.Close()
	token, err := w.bridge.AddServer("scanner-1", "admin")
	if err != nil {
		t.Fatal(err)
	}
	tif := fixture(t, "g3-2d-normal.tif")
	ok := map[string]string{"called": gpFax, "calling": "+441632960123"}
	cases := []struct {
		name, token string
		file        []byte
		fields      map[string]string
		code        int
		field       string
	}{
		{"no token", "", tif, ok, 401, "Authorization"},
		{"wrong token", "scanner-1.nope", tif, ok, 401, "Authorization"},
		{"not a fax", token, []byte("GIF89a..."), ok, 415, "file"},
		{"no number", token, tif, map[string]string{"calling": "x"}, 400, "called"},
		{"no file", token, nil, ok, 400, "file"},
		{"too big", token, bytes.Repeat([]byte("II*\x00"), 100<<10), ok, 413, "file"},
		{"good", token, tif, ok, 202, ""},
	}
	for _, c := range cases {
		code, body := upload(t, srv.URL, c.token, c.file, c.fields)
		if code != c.code || (c.field != "" && body["field"] != c.field) {
			t.Errorf("%s: %d %v, want %d naming %q", c.name, code, body, c.code, c.field)
		}
	}
	subject, _ := parts(t, w.mailbox(t, gpAddr, 1)[0])
	if subject != "Fax from +441632960123 (1 page)" {
		t.Errorf("Subject = %q", subject)
	}
	if err := w.bridge.RevokeServer("scanner-1", "admin"); err != nil {
		t.Fatal(err)
	}
	if code, _ := upload(t, srv.URL, token, tif, ok); code != 401 {
		t.Errorf("revoked token: %d, want 401", code)
	}
}

func TestUploadCannotStoreAnswers503(t *testing.T) {
	t.Parallel()
	w := newWorld(t, func(c *Config) { c.Queue = refusingQueue{} })
	srv := httptest.NewServer(w.bridge.UploadHandler(1 << 20))
	defer srv.Close()
	token, _ := w.bridge.AddServer("fs", "admin")
	code, body := upload(t, srv.URL, token, fixture(t, "g4-fine.tif"), map[string]string{"called": gpFax})
	if code != 503 || !strings.Contains(body["error"].(string), "send it again") {
		t.Errorf("got %d %v, want 503", code, body)
	}
}

func TestReportCountsSenders(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	for _, c := range []struct{ calling, file string }{
		{gpFax, "g4-fine.tif"}, {gpFax, "g4-3pages.tif"}, {"+441632960999", "g3-2d-normal.tif"},
	} {
		if _, err := w.bridge.Receive(t.Context(), Inbound{Source: "test", Called: gpFax, Calling: c.calling,
			Data: fixture(t, c.file)}); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := w.bridge.Report(t.Context())
	if err != nil || len(rows) != 2 {
		t.Fatalf("Report = %+v, %v", rows, err)
	}
	// gpFax belongs to a verified endpoint: that sender could send securely.
	if r := rows[0]; r.Sender != gpFax || r.Faxes != 2 || r.Pages != 4 || !r.CouldSendSecurely || r.SecureEndpoint != gpAddr || len(r.Weeks) != 1 {
		t.Errorf("row 0 = %+v", r)
	}
	if r := rows[1]; r.Sender != "+441632960999" || r.CouldSendSecurely || r.Faxes != 1 {
		t.Errorf("row 1 = %+v", r)
	}
	var csv bytes.Buffer
	if err := WriteReportCSV(&csv, rows); err != nil || strings.Count(csv.String(), "\n") != 3 {
		t.Errorf("CSV:\n%s (%v)", csv.String(), err)
	}
}
