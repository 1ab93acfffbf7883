package main

import (
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"nhsrelay/relay/relaytest"
)

// -notify reaches a server that offers DSN as RCPT NOTIFY= (RFC 3461).
func TestSendNotify(t *testing.T) {
	t.Parallel()
	sink := relaytest.Start(t, relaytest.Options{DSN: true})
	sent, err := send(sendConfig{addr: sink.Addr, sessions: 2, messages: 4, length: 100, from: "a@bench.test",
		to: "b@bench.test", timeout: time.Minute, notify: []smtp.DSNNotify{smtp.DSNNotifySuccess, smtp.DSNNotifyFailure}})
	if err != nil || sent != 4 {
		t.Fatalf("send = %d, %v; want 4, nil", sent, err)
	}
	for _, m := range sink.WaitMessages(t, 4) {
		if got := m.Notify["b@bench.test"]; got != "SUCCESS,FAILURE" {
			t.Errorf("sink saw NOTIFY %q, want SUCCESS,FAILURE", got)
		}
	}
}
