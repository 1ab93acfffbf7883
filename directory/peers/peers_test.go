package peers

import (
	"crypto/x509"
	"errors"
	"strings"
	"testing"

	"nhsrelay/certs/certstest"
	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

// TestSyncLifecycle: add imports the peer's hosted endpoints (not its
// remote ones), verified by federation with the peer URL and certificate
// fingerprint as evidence; later syncs follow additions, suspensions,
// retirements and certificate renewals; remove retires them all.
func TestSyncLifecycle(t *testing.T) {
	t.Parallel()
	r := startRemote(t)
	ctx := t.Context()
	ref := r.hosted(t, "referrals.rx9@rx9.nhs.example")
	res := r.hosted(t, "results.rx9@rx9.nhs.example")
	r.add(t, directory.Endpoint{Address: "gp@elsewhere.nhs.example"}) // not hosted there: not passed on

	l := newLocal(t)
	in, err := l.m.Add(ctx, r.peer("relay-b"))
	if err != nil {
		t.Fatal(err)
	}
	if in.Endpoints != 2 || in.Organisations != 1 || len(in.MXHosts) != 1 || in.MXHosts[0] != "127.0.0.1" {
		t.Fatalf("after add: %+v", in)
	}
	e := byAddress(t, l.d, ref.Address)
	c, _ := x509.ParseCertificate(ref.Certificates[0])
	if e.Peer != "relay-b" || e.Status != directory.StatusVerified || e.Verification.Method != directory.MethodFederation ||
		!strings.Contains(e.Verification.Evidence, r.srv.URL+"/fhir") || !strings.Contains(e.Verification.Evidence, fingerprint(c.Raw)) {
		t.Errorf("imported endpoint = %+v", e)
	}
	if e.NextHop != (directory.NextHop{Kind: directory.HopHost, Host: peerMX, TLS: directory.TLSVerified}) {
		t.Errorf("next hop = %+v, want the peer's MX over verified TLS", e.NextHop)
	}
	if _, err := l.d.CheckRecipient(ctx, ref.Address); err != nil {
		t.Errorf("RCPT for an imported endpoint: %v", err)
	}
	if o, err := l.d.Organisation(ctx, "RX9"); err != nil || o.Source != directory.SourcePeer || o.Name != "Northfield Trust" {
		t.Errorf("organisation = %+v, %v", o, err)
	}
	if n := len(l.d.Endpoints(ctx, directory.Filter{Address: "gp@elsewhere.nhs.example"})); n != 0 {
		t.Errorf("the peer's remote endpoint was imported (%d)", n)
	}
	// The CA is trusted for the peer's MX only, and for its organisations only.
	if len(l.m.TLSCAs("127.0.0.1")) != 1 || len(l.m.TLSCAs("mx.other.example")) != 0 {
		t.Errorf("TLS scope: %d for the peer's MX, %d for another host", len(l.m.TLSCAs("127.0.0.1")), len(l.m.TLSCAs("mx.other.example")))
	}
	if s := l.m.Scopes(); len(s) != 1 || !s[0].AllowsODS("RX9") || s[0].AllowsODS("A81001") {
		t.Errorf("organisation scope wrong: %+v", s)
	}

	// At the peer: one renewed, one suspended, one new.
	renewed, _ := r.ca.SMIMECertificate(t, ref.Address)
	if err := r.d.SetCertificates(ctx, ref.ID, [][]byte{renewed.Raw}); err != nil {
		t.Fatal(err)
	}
	if err := r.d.Suspend(ctx, res.ID, "mailbox moving"); err != nil {
		t.Fatal(err)
	}
	r.hosted(t, "labs.rx9@rx9.nhs.example")
	in, err = l.m.Sync(ctx, "relay-b")
	if err != nil {
		t.Fatal(err)
	}
	if lr := in.Last; lr == nil || strings.Join(lr.Added, ",") != "labs.rx9@rx9.nhs.example" ||
		strings.Join(lr.CertChanged, ",") != ref.Address || strings.Join(lr.Suspended, ",") != res.Address {
		t.Errorf("sync result = %+v", in.Last)
	}
	if e := byAddress(t, l.d, ref.Address); string(e.Certificates[0]) != string(renewed.Raw) ||
		!strings.Contains(e.Verification.Evidence, fingerprint(renewed.Raw)) {
		t.Errorf("renewed certificate not taken: evidence %s", e.Verification.Evidence)
	}
	if _, err := l.d.CheckRecipient(ctx, res.Address); err == nil || !strings.Contains(err.Error(), "suspended at federation peer relay-b") {
		t.Errorf("RCPT for an endpoint the peer suspended: %v", err)
	}
	if got := counter(t, l.reg, "nhsrelay_peer_certificate_changes_total", "relay-b"); got != 1 {
		t.Errorf("certificate change metric = %v, want 1", got)
	}
	if len(l.audit.Find("peer.certificates_changed")) != 1 || len(l.audit.Find("endpoint.certificates")) != 1 {
		t.Errorf("certificate change not audited: %v", l.audit.Actions())
	}

	// Retired at the peer: retired here; a sync with nothing new writes nothing.
	if err := r.d.Retire(ctx, ref.ID, "closed"); err != nil {
		t.Fatal(err)
	}
	in, err = l.m.Sync(ctx, "relay-b")
	if err != nil || in.Last == nil || strings.Join(in.Last.Retired, ",") != ref.Address {
		t.Fatalf("sync after retire: %+v, %v", in.Last, err)
	}
	rev := l.d.Stats().Revision
	if in, err = l.m.Sync(ctx, "relay-b"); err != nil || in.Last.Unchanged != 2 || l.d.Stats().Revision != rev {
		t.Errorf("idle sync: %+v, %v; revision %d → %d", in.Last, err, rev, l.d.Stats().Revision)
	}

	// Remove: every endpoint of the peer retired, its CA forgotten.
	if err := l.m.Remove(ctx, "relay-b"); err != nil {
		t.Fatal(err)
	}
	for _, e := range l.d.Endpoints(ctx, directory.Filter{}) {
		if e.Peer == "relay-b" && e.Status != directory.StatusRetired {
			t.Errorf("after remove, %s is %s", e.Address, e.Status)
		}
	}
	if len(l.m.SMIMECAs()) != 0 || len(l.m.List()) != 0 {
		t.Errorf("after remove: %d CAs, %d peers", len(l.m.SMIMECAs()), len(l.m.List()))
	}
	// The store kept nothing: a new Manager over it has no peers.
	m2, err := New(Config{Directory: l.d, Store: l.m.cfg.Store})
	if err != nil || len(m2.List()) != 0 {
		t.Errorf("reloaded store: %v, %v", m2.List(), err)
	}
}

// TestNeverOverwrite: a peer publishing an address this relay already has,
// or another peer already publishes, is refused for that endpoint, and the
// existing one is unchanged.
func TestNeverOverwrite(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	shared := "referrals.rx9@rx9.nhs.example"
	b, c := startRemote(t), startRemote(t)
	b.hosted(t, shared)
	c.hosted(t, shared)
	cOnly := c.hosted(t, "only.c@c.nhs.example")

	mine := directorytest.Verified("mine@a81001.nhs.example", directory.NextHop{Kind: directory.HopHosted})
	l := newLocal(t, mine)
	if _, err := l.m.Add(ctx, b.peer("relay-b")); err != nil {
		t.Fatal(err)
	}
	in, err := l.m.Add(ctx, c.peer("relay-c"))
	if err != nil {
		t.Fatal(err)
	}
	if in.Last == nil || len(in.Last.Conflicts) != 1 || !strings.Contains(in.Last.Conflicts[0], "federation peer relay-b") || in.Endpoints != 1 {
		t.Errorf("second peer's sync = %+v", in)
	}
	if e := byAddress(t, l.d, shared); e.Peer != "relay-b" {
		t.Errorf("%s now from %q, want relay-b's kept", shared, e.Peer)
	}
	if len(l.audit.Find("peer.conflict")) != 1 {
		t.Errorf("conflict not audited: %v", l.audit.Actions())
	}

	// A peer cannot take this relay's own endpoint either, and an
	// administrator cannot edit a peer's endpoint behind the peer's back.
	res, err := l.d.SyncPeer(ctx, "relay-b", []directory.PeerEndpoint{{RemoteID: "x", Address: mine.Address, ODS: "A81001",
		NextHop: directory.NextHop{Kind: directory.HopHost, Host: peerMX}, Active: true}})
	if err != nil || len(res.Conflicts) != 1 || !strings.Contains(res.Conflicts[0], "this relay's own endpoint") {
		t.Errorf("peer publishing a local address: %+v, %v", res, err)
	}
	if e := byAddress(t, l.d, mine.Address); e.Peer != "" || e.NextHop.Kind != directory.HopHosted {
		t.Errorf("local endpoint changed: %+v", e)
	}
	e := byAddress(t, l.d, cOnly.Address)
	e.Contacts = []string{"someone"}
	if err := l.d.UpdateEndpoint(ctx, e); !errors.Is(err, directory.ErrConflict) {
		t.Errorf("admin update of a peer endpoint: %v, want ErrConflict", err)
	}
}

// TestSyncFailureAlerts: a peer that cannot be read (wrong token, down)
// is refused at add with the reason, and a failing sync is logged,
// counted and audited and leaves the imported endpoints as they were.
func TestSyncFailureAlerts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := startRemote(t)
	ep := r.hosted(t, "referrals.rx9@rx9.nhs.example")
	l := newLocal(t)

	bad := r.peer("relay-b")
	bad.Token = "wrong-token-0123456789"
	_, err := l.m.Add(ctx, bad)
	var ie *InputError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "401") || len(l.m.List()) != 0 {
		t.Errorf("add with a wrong token: %v", err)
	}
	wrongCA := r.peer("relay-b")
	wrongCA.CA = string(certstestPEM(certstest.NewCA(t).Cert))
	if _, err := l.m.Add(ctx, wrongCA); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("add with another CA: %v, want a TLS verification error", err)
	}
	for _, p := range []Peer{{Name: "Bad Name!", URL: "ftp://x", Token: "short", CA: "none"},
		{Name: "b", URL: "http://relay.nhs.example/fhir", Token: peerToken, CA: r.caPEM()}} {
		if _, err := l.m.Add(ctx, p); !errors.As(err, &ie) {
			t.Errorf("add %+v: %v, want an InputError", p, err)
		}
	}

	if _, err := l.m.Add(ctx, r.peer("relay-b")); err != nil {
		t.Fatal(err)
	}
	r.srv.Close() // the peer goes down
	if _, err := l.m.Sync(ctx, "relay-b"); err == nil {
		t.Fatal("sync of a stopped peer succeeded")
	}
	if got := counter(t, l.reg, "nhsrelay_peer_sync_failures_total", "relay-b"); got != 1 {
		t.Errorf("failure metric = %v, want 1", got)
	}
	if evs := l.audit.Find("peer.sync"); len(evs) != 1 || evs[0].Outcome != "failed" {
		t.Errorf("failure audit = %+v", evs)
	}
	if in, _ := l.m.Show("relay-b"); in.LastError == "" || in.Endpoints != 1 {
		t.Errorf("after a failed sync: %+v", in)
	}
	if e := byAddress(t, l.d, ep.Address); e.Status != directory.StatusVerified {
		t.Errorf("a failed sync changed %s to %s", e.Address, e.Status)
	}
}
