package smimepolicy_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"nhsrelay/directory"
	"nhsrelay/relay"
	"nhsrelay/relay/queue"
)

// The relay's own System mail (a verification challenge to an endpoint
// with no certificate yet) is neither held by CheckRecipient nor by Seal:
// it goes as it is, audited; clinical mail to the same endpoint is held.
func TestSystemMailToEndpointWithoutCertificate(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	const addr = "new@rx9.nhs.test"
	f.dir.put(directory.Endpoint{Address: addr, ODS: "RX9", Status: directory.StatusPending,
		NextHop: directory.NextHop{Kind: directory.HopMX}})
	ep := f.dir.get(addr)
	body := []byte("From: <directory@relay.rx9.nhs.test>\r\nTo: <" + addr + ">\r\nSubject: Verification code\r\n\r\nVerification code: 1234\r\n")

	clinical := queue.Message{ID: "Q1", From: senderAddr, Account: "gp"}
	if err := f.p.CheckRecipient(t.Context(), clinical, ep); !errors.Is(err, relay.ErrHold) {
		t.Errorf("CheckRecipient(clinical) = %v, want ErrHold", err)
	}
	if _, err := sealTo(t, f, clinical, []directory.Endpoint{ep}, body); !errors.Is(err, relay.ErrHold) {
		t.Errorf("Seal(clinical) = %v, want ErrHold", err)
	}

	system := queue.Message{ID: "Q2", From: "directory@relay.rx9.nhs.test", System: true}
	if err := f.p.CheckRecipient(t.Context(), system, ep); err != nil {
		t.Errorf("CheckRecipient(system) = %v, want nil", err)
	}
	out, err := sealTo(t, f, system, []directory.Endpoint{ep}, body)
	if err != nil || !bytes.Equal(out, body) {
		t.Fatalf("Seal(system) = %q, %v; want the message as it is", out, err)
	}
	evs := f.audit.Find("smime.system_unsealed")
	if len(evs) != 1 || evs[0].QueueID != "Q2" || evs[0].Endpoint != addr ||
		!strings.Contains(evs[0].Detail, "system mail sent without S/MIME: no valid certificate") {
		t.Errorf("smime.system_unsealed events = %+v", evs)
	}

	// To a recipient with a valid certificate, System mail is still sealed.
	out, err = sealTo(t, f, system, []directory.Endpoint{f.dir.get(remoteAddr)}, body)
	if err != nil || !strings.Contains(string(out), "smime-type=enveloped-data") {
		t.Errorf("Seal(system, valid certificate) = %v, want enveloped-data", err)
	}
}
