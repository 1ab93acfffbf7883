package faxbridge

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// parts returns a delivered message's subject and its parts by content type.
func parts(t *testing.T, raw string) (subject string, byType map[string][]byte) {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(raw))
	if err != nil {
		t.Fatalf("delivered message: %v", err)
	}
	subject, _ = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	byType = map[string][]byte{}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		body, err := io.ReadAll(p) // multipart decodes quoted-printable only
		if err != nil {
			t.Fatal(err)
		}
		if p.Header.Get("Content-Transfer-Encoding") == "base64" {
			body = mustBase64(t, body)
		}
		byType[ct] = body
	}
	return subject, byType
}

func pdfPages(t *testing.T, pdf []byte) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "x.pdf")
	os.WriteFile(f, pdf, 0o600)
	out, err := exec.Command("pdfinfo", f).CombinedOutput()
	if err != nil {
		t.Fatalf("pdfinfo: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Pages:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "Pages:"))
		}
	}
	return ""
}

func TestReceiveRoutesByDialledNumber(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	tif := fixture(t, "g4-3pages.tif")
	out, err := w.bridge.Receive(t.Context(), Inbound{Source: "test", Called: "01632 960001", Calling: "+441632960999", Data: tif})
	if err != nil || out.Outcome != OutcomeDelivered || out.Pages != 3 {
		t.Fatalf("Receive = %+v, %v", out, err)
	}
	subject, ps := parts(t, w.mailbox(t, gpAddr, 1)[0])
	if subject != "Fax from +441632960999 (3 pages)" {
		t.Errorf("Subject = %q", subject)
	}
	if !bytes.Equal(ps["image/tiff"], tif) {
		t.Error("the original TIFF is not attached unchanged")
	}
	if got := pdfPages(t, ps["application/pdf"]); got != "4" {
		t.Errorf("PDF has %s pages, want 4 (cover + 3)", got)
	}
}

func TestUnroutableIsDeadLetteredAndRerouted(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	out, err := w.bridge.Receive(t.Context(), Inbound{Source: "test", Called: "+441632960555", Data: fixture(t, "g4-fine.tif")})
	if err != nil || out.Outcome != OutcomeDeadLetter || !strings.Contains(out.Reason, "+441632960555") {
		t.Fatalf("Receive = %+v, %v; want a dead letter naming the number", out, err)
	}
	dls, err := w.bridge.DeadLetters()
	if err != nil || len(dls) != 1 || dls[0].Ref != out.Ref {
		t.Fatalf("DeadLetters = %+v, %v", dls, err)
	}
	// Re-routing by number alone fails again, with the reason kept.
	if again, err := w.bridge.Reroute(t.Context(), out.Ref, ""); err != nil || again.Outcome != OutcomeDeadLetter {
		t.Fatalf("Reroute by number = %+v, %v; want still a dead letter", again, err)
	}
	re, err := w.bridge.Reroute(t.Context(), out.Ref, gpAddr)
	if err != nil || re.Outcome != OutcomeRerouted {
		t.Fatalf("Reroute = %+v, %v", re, err)
	}
	w.mailbox(t, gpAddr, 1)
	if dls, _ := w.bridge.DeadLetters(); len(dls) != 0 {
		t.Errorf("dead letters after reroute: %+v", dls)
	}
}

func TestNothingReadableIsDeadLettered(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	out, err := w.bridge.Receive(t.Context(), Inbound{Source: "test", Called: gpFax, Data: []byte("II*\x00garbage")})
	if err != nil || out.Outcome != OutcomeDeadLetter {
		t.Fatalf("Receive = %+v, %v; want dead letter", out, err)
	}
}

func TestResendIsDeliveredOnceAndOverlapNamed(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	first, err := w.bridge.Receive(t.Context(), Inbound{Source: "test", Called: gpFax, Data: fixture(t, "g4-fine.tif")})
	if err != nil || first.Outcome != OutcomeDelivered {
		t.Fatalf("first = %+v, %v", first, err)
	}
	dup, err := w.bridge.Receive(t.Context(), Inbound{Source: "test", Called: gpFax, Data: fixture(t, "g3-1d-fine.tif")})
	if err != nil || dup.Outcome != OutcomeDuplicate || dup.RepeatOf != first.Ref {
		t.Fatalf("same page again = %+v, %v; want a duplicate of %s", dup, err, first.Ref)
	}
	// A 3-page fax whose first page was sent before: delivered, and the
	// cover page says which page repeats.
	more, err := w.bridge.Receive(t.Context(), Inbound{Source: "test", Called: gpFax, Data: fixture(t, "g4-3pages.tif")})
	if err != nil || more.Outcome != OutcomeDelivered {
		t.Fatalf("overlapping resend = %+v, %v", more, err)
	}
	msgs := w.mailbox(t, gpAddr, 2)
	found := false
	for _, m := range msgs {
		_, ps := parts(t, m)
		if strings.Contains(string(ps["text/plain"]), "Already received in fax "+first.Ref+": page 1") {
			found = true
		}
	}
	if !found {
		t.Error("no delivered message names the repeated page")
	}
}

func TestFailedReceptionIsRecorded(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	out, err := w.bridge.Receive(t.Context(), Inbound{Source: "hylafax", Called: gpFax, Failed: "No carrier"})
	if err != nil || out.Outcome != OutcomeFailed || !strings.Contains(out.Reason, "No carrier") {
		t.Fatalf("Receive = %+v, %v", out, err)
	}
}

func mustBase64(t *testing.T, b []byte) []byte {
	t.Helper()
	out, err := base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return out
}
