package notices

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// axeResult is the part of axe.run's result the test reads.
type axeResult struct {
	Violations []struct {
		ID     string `json:"id"`
		Impact string `json:"impact"`
		Help   string `json:"help"`
		Nodes  []struct {
			HTML string `json:"html"`
		} `json:"nodes"`
	} `json:"violations"`
}

// TestEmailHTMLAccessible renders the HTML part of each kind of notice and
// has axe-core (testdata, from npm) check it in Debian's headless
// Chromium: no serious or critical violation.
func TestEmailHTMLAccessible(t *testing.T) {
	t.Parallel()
	axe, err := os.ReadFile("testdata/axe-core/axe.min.js")
	if err != nil {
		t.Fatal(err)
	}
	ts, err := loadTemplates(nil)
	if err != nil {
		t.Fatal(err)
	}
	pages := map[string][]byte{}
	start := time.Date(2027, 3, 29, 9, 30, 0, 0, london)
	for _, k := range []Kind{KindNew, KindChanged, KindCancelled} {
		n := Notice{Kind: k, Appointment: Appointment{PatientName: "Ada <b>Lovelace</b>", Start: start, End: start.Add(30 * time.Minute),
			TimeZone: "Europe/London", Location: "Riverside Medical Practice, 1 River Street, Leeds", Clinic: "Diabetes review",
			Department: "Outpatients", Instructions: "Bring your meter.\nArrive early.", ContactPhone: "0113 496 0000",
			VideoLink: "https://video.example/room/1"}}
		v := newView(n, "Riverside Medical Practice")
		v.Subject = v.Heading
		var b bytes.Buffer
		if err := ts.def.html.Execute(&b, v); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b.Bytes(), []byte("<b>Lovelace")) {
			t.Fatal("patient name not escaped in HTML")
		}
		pages["/"+string(k)] = b.Bytes()
	}
	// A control page with an image without alt text (axe: image-alt,
	// critical): the check must find it, or it checks nothing.
	pages["/control"] = []byte(`<!DOCTYPE html><html lang="en"><head><title>x</title></head><body><main><img src="x.png"></main></body></html>`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(pages[r.URL.Path])
	}))
	defer srv.Close()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath("/usr/bin/chromium"),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-extensions", true),
		chromedp.Flag("no-first-run", true), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for path := range pages {
		if _, err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+path)); err != nil {
			t.Fatalf("%s: chromium: %v", path, err)
		}
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](string(axe))); err != nil {
			t.Fatalf("%s: load axe-core: %v", path, err)
		}
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](
			`axe.run(document, {resultTypes: ["violations"]}).then(r => ({violations: r.violations}))`,
			chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: axe.run: %v", path, err)
		}
		var res axeResult
		if err := json.Unmarshal(raw, &res); err != nil {
			t.Fatal(err)
		}
		if path == "/control" {
			if len(res.Violations) == 0 || res.Violations[0].Impact != "critical" {
				t.Fatalf("control page: axe found %+v, want the critical image-alt violation", res.Violations)
			}
			continue
		}
		for _, v := range res.Violations {
			if v.Impact == "serious" || v.Impact == "critical" {
				t.Errorf("%s: %s violation %s: %s (%d nodes, first %s)", path, v.Impact, v.ID, v.Help, len(v.Nodes), v.Nodes[0].HTML)
			} else {
				t.Logf("%s: %s violation %s: %s", path, v.Impact, v.ID, v.Help)
			}
		}
	}
}
