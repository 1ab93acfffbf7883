package faxbridge

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"nhsrelay/relay"
)

func TestT37FixtureDelivered(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	h := &T37{Bridge: w.bridge, Domain: "fax.nhsrelay.test", Gateways: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}
	rcpt := "FAX=+441632960001@fax.nhsrelay.test"
	// Not a gateway, no account: refused before anything is stored.
	_, err := h.Handle(t.Context(), relay.Envelope{ClientIP: "198.51.100.7", Recipients: []string{rcpt}},
		bytes.NewReader(fixture(t, "t37-simple-mode.eml")))
	var r *Refusal
	if !errors.As(err, &r) || r.Code != 550 {
		t.Fatalf("Handle from a stranger = %v, want 550", err)
	}
	if !h.Accepts(rcpt) || h.Accepts("gp@nhsrelay.test") || h.Accepts("FAX=+44@other.test") {
		t.Fatal("Accepts is wrong")
	}
	text, err := h.Handle(t.Context(), relay.Envelope{From: "gateway@x", ClientIP: "192.0.2.9", Recipients: []string{rcpt}},
		bytes.NewReader(fixture(t, "t37-simple-mode.eml")))
	if err != nil || !strings.Contains(text, "FX-") {
		t.Fatalf("Handle = %q, %v", text, err)
	}
	subject, ps := parts(t, w.mailbox(t, gpAddr, 1)[0])
	if subject != "Fax from +441632960777 (3 pages)" {
		t.Errorf("Subject = %q", subject)
	}
	if got := pdfPages(t, ps["application/pdf"]); got != "4" {
		t.Errorf("PDF pages = %s, want 4", got)
	}
}

func TestT37WithoutTIFFRefused(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	h := &T37{Bridge: w.bridge, Domain: "fax.nhsrelay.test"}
	_, err := h.Handle(t.Context(), relay.Envelope{Account: "gw", Recipients: []string{"FAX=+441632960001@fax.nhsrelay.test"}},
		strings.NewReader("Subject: hi\r\n\r\nno fax here\r\n"))
	var r *Refusal
	if !errors.As(err, &r) || r.Code != 554 {
		t.Fatalf("Handle error = %v, want a 554 Refusal", err)
	}
}

func FuzzParseFaxLocalPart(f *testing.F) {
	for _, s := range []string{"FAX=+441632960123", "fax=+44-1632-960123/T33S=1", "", "FAX=", "FAX=+44\x00", `"FAX=+1"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseFaxLocalPart(s)
		if err != nil {
			return
		}
		if n2, err := ParseFaxLocalPart("FAX=" + n); err != nil || n2 != n {
			t.Fatalf("%q → %q → %q, %v", s, n, n2, err)
		}
	})
}

func TestT37CannotStoreAnswers451(t *testing.T) {
	t.Parallel()
	w := newWorld(t, func(c *Config) { c.Queue = refusingQueue{} })
	h := &T37{Bridge: w.bridge, Domain: "fax.nhsrelay.test"}
	_, err := h.Handle(t.Context(), relay.Envelope{Account: "gw", Recipients: []string{"FAX=+441632960001@fax.nhsrelay.test"}},
		bytes.NewReader(fixture(t, "t37-simple-mode.eml")))
	var r *Refusal
	if !errors.As(err, &r) || r.Code != 451 {
		t.Fatalf("Handle error = %v, want a 451 Refusal (the gateway keeps the message)", err)
	}
}

func TestT37RecipientNotAFaxAddressRefused(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	h := &T37{Bridge: w.bridge, Domain: "fax.nhsrelay.test"}
	// One good and one bad recipient: refused before anything is stored,
	// never a 250 that drops the bad one's fax.
	_, err := h.Handle(t.Context(), relay.Envelope{Account: "gw",
		Recipients: []string{"FAX=+441632960001@fax.nhsrelay.test", "gp@nhsrelay.test"}},
		bytes.NewReader(fixture(t, "t37-simple-mode.eml")))
	var r *Refusal
	if !errors.As(err, &r) || r.Code != 550 {
		t.Fatalf("Handle error = %v, want a 550 Refusal", err)
	}
	_, err = h.Handle(t.Context(), relay.Envelope{Account: "gw"}, bytes.NewReader(fixture(t, "t37-simple-mode.eml")))
	if !errors.As(err, &r) || r.Code != 554 {
		t.Fatalf("Handle without recipients = %v, want a 554 Refusal", err)
	}
}
