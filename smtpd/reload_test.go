package smtpd

import (
	"strings"
	"sync"
	"testing"
)

// SetLimits takes effect for the next connection, command and message on
// a running server; a bad Limits changes nothing.
func TestSetLimits(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)

	// Trusted networks: loopback may relay without AUTH once trusted.
	rc := greeted(t, ts.sub)
	rc.want("EHLO client.example", "250 ")
	rc.want("MAIL FROM:<a@b.example>", "530 5.7.0")
	l := ts.srv.Limits()
	l.TrustedNetworks = loopback
	l.MaxConnsPerIP = 3
	l.MaxHeaderBytes = 1024
	if err := ts.srv.SetLimits(l); err != nil {
		t.Fatalf("SetLimits: %v", err)
	}
	rc.want("MAIL FROM:<a@b.example>", "530 5.7.0") // an open session keeps its status
	trusted := greeted(t, ts.sub)
	trusted.want("EHLO client.example", "250 ")
	trusted.want("MAIL FROM:<a@b.example>", "250 ")

	// Header limit: applies to the next message.
	c := ts.submitClient(t)
	long := "From: <" + own + ">\r\n" + strings.Repeat("X-Filler: 0123456789012345678901234567890123456789\r\n", 30) + "\r\nbody\r\n"
	se := wantReply(t, func() error { _, err := send(c, own, []string{remote}, long); return err }(), 552, "5.3.4")
	if !strings.Contains(se.Message, "1024 bytes") {
		t.Errorf("reply %q does not name the new limit", se.Message)
	}

	// Per-IP connections are trusted-exempt; untrust and lower it: with
	// three open (rc, trusted, c), the next is refused.
	l.TrustedNetworks, l.MaxConnsPerIP = nil, 3
	if err := ts.srv.SetLimits(l); err != nil {
		t.Fatalf("SetLimits: %v", err)
	}
	if got := dialRaw(t, ts.mx).reply(); !strings.HasPrefix(got, "421 4.7.0 relay.nhs.example too many connections from your address") {
		t.Fatalf("over the new MaxConnsPerIP: %q, want 421 4.7.0", got)
	}

	// Invalid: every problem named, nothing changed.
	bad := l
	bad.MaxConns, bad.DataTimeout = -1, -1
	err := ts.srv.SetLimits(bad)
	if err == nil || !strings.Contains(err.Error(), "MaxConns") || !strings.Contains(err.Error(), "DataTimeout") {
		t.Fatalf("SetLimits(bad) = %v, want MaxConns and DataTimeout named", err)
	}
	if got := ts.srv.Limits(); got.MaxConns != DefaultMaxConns || got.MaxConnsPerIP != 3 || got.DataTimeout != DefaultDataTimeout {
		t.Errorf("after a refused SetLimits: %+v", got)
	}
	// Zero takes the default, as in Config.
	if err := ts.srv.SetLimits(Limits{}); err != nil {
		t.Fatal(err)
	}
	if got := ts.srv.Limits(); got.MaxConnsPerIP != DefaultMaxConnsPerIP || got.MaxAuthFailures != DefaultMaxAuthFailures {
		t.Errorf("zero Limits: %+v, want defaults", got)
	}
}

// Reads and SetLimits at once, for the race detector.
func TestSetLimitsConcurrent(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 20 {
				if i%2 == 0 {
					if err := ts.srv.SetLimits(Limits{MaxConns: 100 + j, MaxAuthFailures: 1 + j}); err != nil {
						t.Error(err)
						return
					}
				} else {
					greeted(t, ts.mx).want("QUIT", "221 ")
				}
			}
		})
	}
	wg.Wait()
}
