package api

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"nhsrelay/audit"
	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

// fixture is a real directory behind the API on a loopback httptest server.
type fixture struct {
	d     *directory.Directory
	srv   *httptest.Server
	mail  *directorytest.Mailer
	audit *directorytest.AuditLog
}

type options struct {
	noMailer        bool
	maxJSON, maxCSV int64
	nextHop         string // PublishNextHop
}

// start serves the API for a directory holding eps, wrapped as cmd's admin
// listener wraps it: the request's actor is set with audit.WithActor (here
// from X-Test-Actor, default "alice"; cmd takes it from the bearer token).
func start(t *testing.T, opt options, eps ...directory.Endpoint) *fixture {
	t.Helper()
	f := &fixture{mail: &directorytest.Mailer{}, audit: &directorytest.AuditLog{}}
	f.d = directorytest.Open(t, func(c *directory.Config) {
		c.Audit = f.audit
		if !opt.noMailer {
			c.Mailer, c.ChallengeFrom = f.mail, "directory@relay.nhs.example"
		}
	}, eps...)
	if opt.maxJSON == 0 {
		opt.maxJSON = maxJSONBody
	}
	if opt.maxCSV == 0 {
		opt.maxCSV = maxCSVBody
	}
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	s := newServer(f.d, logger, opt.maxJSON, opt.maxCSV)
	s.nextHop = opt.nextHop
	h := s.mux
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		actor := r.Header.Get("X-Test-Actor")
		if actor == "" {
			actor = "alice"
		}
		h.ServeHTTP(w, r.WithContext(audit.WithActor(r.Context(), actor)))
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// response is one answer from the server.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request. body: nil, a string sent as is (with ctype), or a
// value sent as JSON.
func (f *fixture) do(t *testing.T, method, path string, body any, hdr ...string) response {
	t.Helper()
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd, ctype = strings.NewReader(b), "application/json"
	case []byte:
		rd, ctype = bytes.NewReader(b), "text/csv"
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd, ctype = bytes.NewReader(data), "application/json"
	}
	req, err := http.NewRequestWithContext(t.Context(), method, f.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return readResponse(t, resp)
}

// readResponse reads and closes resp.
func readResponse(t *testing.T, resp *http.Response) response {
	t.Helper()
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, data}
}

// want checks the status and decodes the body into out (if not nil).
func (r response) want(t *testing.T, status int, out any) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body: %s", r.status, status, r.body)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			t.Fatalf("decode %s: %v", r.body, err)
		}
	}
	return r
}

// wantError checks an admin error: status, JSON content type, words, and
// (if field is not "") a message for that field.
func (r response) wantError(t *testing.T, status int, field string) errorBody {
	t.Helper()
	var e errorBody
	r.want(t, status, &e)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if e.Error == "" {
		t.Errorf("error body %s has no words", r.body)
	}
	if field != "" && e.Fields[field] == "" {
		t.Errorf("error fields = %v, want a message for %q", e.Fields, field)
	}
	return e
}

// verified is a verified endpoint for addr that may receive mail without
// S/MIME (TLSOnly), so that Check says OK.
func verified(addr string) directory.Endpoint {
	e := directorytest.Verified(addr, directory.NextHop{Kind: directory.HopMX})
	e.TLSOnly = true
	return e
}
