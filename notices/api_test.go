package notices_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// startAt moves the appointment, keeping its length.
func startAt(t time.Time) func(map[string]any) {
	return func(r map[string]any) {
		r["appointment"].(map[string]any)["start"] = t.Format("2006-01-02T15:04:05")
		r["appointment"].(map[string]any)["end"] = t.Add(30 * time.Minute).Format("2006-01-02T15:04:05")
	}
}

// fields returns the field names a 400 answer lists.
func fields(out map[string]any) []string {
	var fs []string
	list, _ := out["fields"].([]any)
	for _, f := range list {
		fs = append(fs, f.(map[string]any)["field"].(string))
	}
	return fs
}

func TestValidationNamesEachBadField(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	when := h.clock.Now().Add(72 * time.Hour).Truncate(time.Hour)
	set := func(path string, v any) func(map[string]any) {
		return func(r map[string]any) {
			keys := strings.Split(path, ".")
			m := r
			for _, k := range keys[:len(keys)-1] {
				m = m[k].(map[string]any)
			}
			if v == nil {
				delete(m, keys[len(keys)-1])
			} else {
				m[keys[len(keys)-1]] = v
			}
		}
	}
	for _, c := range []struct {
		name, field string
		edit        func(map[string]any)
	}{
		{"reference missing", "reference", set("reference", "")},
		{"reference with spaces", "reference", set("reference", "PAS 1")},
		{"organisation lower case", "organisation", set("organisation", "a81001")},
		{"organisation unknown", "organisation", set("organisation", "ZZZ99")},
		{"kind unknown", "kind", set("kind", "moved")},
		{"name missing", "patient.name", set("patient.name", "")},
		{"name control character", "patient.name", set("patient.name", "Ada\x07")},
		{"email bad", "patient.email", set("patient.email", "ada at example")},
		{"email no dot", "patient.email", set("patient.email", "ada@localhost")},
		{"email with display name", "patient.email", set("patient.email", "Ada <ada@example.org>")},
		{"no email, no address", "patient.address", func(r map[string]any) {
			delete(r["patient"].(map[string]any), "email")
			delete(r["patient"].(map[string]any), "address")
		}},
		{"postcode bad", "patient.address.postcode", set("patient.address.postcode", "12345")},
		{"address no lines", "patient.address.lines", set("patient.address.lines", []string{})},
		{"address line too long", "patient.address.lines[0]", set("patient.address.lines", []string{strings.Repeat("x", 81)})},
		{"NHS number check digit", "patient.nhs_number", set("patient.nhs_number", "943 476 5918")},
		{"NHS number length", "patient.nhs_number", set("patient.nhs_number", "12345")},
		{"start missing", "appointment.start", set("appointment.start", "")},
		{"start garbage", "appointment.start", set("appointment.start", "next Tuesday")},
		{"start in the past", "appointment.start", startAt(when.Add(-100 * time.Hour))},
		{"start too far ahead", "appointment.start", startAt(when.AddDate(3, 0, 0))},
		{"end before start", "appointment.end", set("appointment.end", when.Add(-time.Hour).Format("2006-01-02T15:04:05"))},
		{"time zone unknown", "appointment.time_zone", set("appointment.time_zone", "Mars/Olympus")},
		{"location missing", "appointment.location", set("appointment.location", "")},
		{"clinic too long", "appointment.clinic", set("appointment.clinic", strings.Repeat("c", 201))},
		{"instructions too long", "appointment.instructions", set("appointment.instructions", strings.Repeat("i", 2001))},
		{"phone letters", "appointment.contact_phone", set("appointment.contact_phone", "call us")},
		{"video link http", "appointment.video_link", set("appointment.video_link", "http://video.example/x")},
		{"unknown field", "colour", set("colour", "blue")},
		{"wrong type", "patient.name", set("patient.name", 42)},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := request("VAL-1", when, func(r map[string]any) {
				r["appointment"].(map[string]any)["start"] = when.Format("2006-01-02T15:04:05")
				r["appointment"].(map[string]any)["end"] = when.Add(30 * time.Minute).Format("2006-01-02T15:04:05")
				c.edit(r)
			})
			code, out, _ := h.post(t, h.token, body)
			if code != http.StatusBadRequest {
				t.Fatalf("POST = %d %v, want 400", code, out)
			}
			if fs := fields(out); len(fs) != 1 || fs[0] != c.field {
				t.Fatalf("fields = %v, want [%s]", fs, c.field)
			}
		})
	}
	// Every bad field at once, and nothing stored.
	code, out, _ := h.post(t, h.token, `{"reference":"","organisation":"x","kind":"?","patient":{},"appointment":{"time_zone":"Nowhere"}}`)
	if code != http.StatusBadRequest || len(fields(out)) < 6 {
		t.Fatalf("POST = %d %v, want 400 with every bad field", code, fields(out))
	}
	if st, err := h.store.Get(t.Context(), "VAL-1"); err == nil {
		t.Fatalf("a refused notice was stored: %+v", st)
	}
}

func TestAuthAndLimits(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	body := request("AUTH-1", h.clock.Now().Add(48*time.Hour), nil)
	if code, _, hdr := h.post(t, "", body); code != http.StatusUnauthorized || hdr.Get("WWW-Authenticate") == "" {
		t.Fatalf("no token: %d, want 401 with WWW-Authenticate", code)
	}
	if code, _, _ := h.post(t, h.token+"x", body); code != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %d, want 401", code)
	}
	other, tok, err := h.svc.AddCredential(t.Context(), "Northfield PAS", []string{"RX9"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if code, _, _ := h.post(t, tok, body); code != http.StatusForbidden {
		t.Fatalf("credential for another organisation: %d, want 403", code)
	}
	if err := h.svc.RevokeCredential(t.Context(), other.ID); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := h.post(t, tok, body); code != http.StatusUnauthorized {
		t.Fatalf("revoked credential: %d, want 401", code)
	}
	big := `{"reference":"` + strings.Repeat("x", 70<<10) + `"}`
	if code, out, _ := h.post(t, h.token, big); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("70 KiB body: %d %v, want 413", code, out)
	}
	if code, _, _ := h.post(t, h.token, request("CANCEL-NONE", h.clock.Now().Add(48*time.Hour), func(r map[string]any) { r["kind"] = "cancelled" })); code != http.StatusNotFound {
		t.Fatalf("cancel of an unknown reference: %d, want 404", code)
	}
	// A credential sees only its organisations' notices.
	if code, _, _ := h.post(t, h.token, body); code != http.StatusCreated {
		t.Fatal("valid notice refused")
	}
	_, tok2, _ := h.svc.AddCredential(t.Context(), "Northfield PAS 2", []string{"RX9"}, "")
	req, _ := http.NewRequest(http.MethodGet, h.api.URL+"/v1/notices/AUTH-1", nil)
	req.Header.Set("Authorization", "Bearer "+tok2)
	if code, _, _ := do(t, req); code != http.StatusNotFound {
		t.Fatalf("another organisation's notice: %d, want 404", code)
	}
}

func TestIdempotencyConflicts(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	when := h.clock.Now().Add(96 * time.Hour).Truncate(time.Hour)
	if code, _, _ := h.post(t, h.token, request("IDEM-1", when, nil)); code != http.StatusCreated {
		t.Fatal("first POST refused")
	}
	// kind new with another time: must say "changed".
	code, out, _ := h.post(t, h.token, request("IDEM-1", when.Add(time.Hour), nil))
	if code != http.StatusConflict || !strings.Contains(out["error"].(string), "changed") {
		t.Fatalf("new with another appointment: %d %v, want 409 naming kind changed", code, out)
	}
	// Another NHS number is another patient.
	code, _, _ = h.post(t, h.token, request("IDEM-1", when, func(r map[string]any) {
		r["kind"] = "changed"
		r["patient"].(map[string]any)["nhs_number"] = "401 023 2137"
	}))
	if code != http.StatusConflict {
		t.Fatalf("changed for another NHS number: %d, want 409", code)
	}
	// A change, then a retry of the original: still the same notice.
	if code, _, _ := h.post(t, h.token, request("IDEM-1", when.Add(time.Hour), func(r map[string]any) { r["kind"] = "changed" })); code != http.StatusOK {
		t.Fatalf("changed: %d", code)
	}
	code, out, hdr := h.post(t, h.token, request("IDEM-1", when, nil))
	if code != http.StatusOK || hdr.Get("Idempotent-Replayed") != "true" || out["version"].(float64) != 1 {
		t.Fatalf("retry of version 0 after the change: %d %v, want 200 replayed showing version 1", code, out)
	}
}
