package directory_test

import (
	"strings"
	"testing"

	"nhsrelay/audit"
	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

// The TLS-only exception (no S/MIME, verified TLS only) is an
// administrator's decision: it needs evidence, and setting, changing or
// clearing it is audited on its own with the actor and that evidence.
func TestTLSOnlyException(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	ctx := admin(t)
	mustOrg(t, fx.d, directory.Organisation{ODS: directorytest.ODS, Name: "Test Practice"})
	const why = "legacy lab system cannot decrypt S/MIME; CAB change 1234, ends 2026-06"

	ep := directorytest.Pending("lab@nhs.example")
	ep.TLSOnly = true
	for name, tc := range map[string]struct {
		edit  func(e *directory.Endpoint)
		field string
	}{
		"no evidence":    {func(e *directory.Endpoint) {}, "tls_only_evidence"},
		"blank evidence": {func(e *directory.Endpoint) { e.TLSOnlyEvidence = "  " }, "tls_only_evidence"},
		"hosted next hop": {func(e *directory.Endpoint) {
			e.TLSOnlyEvidence, e.NextHop = why, directory.NextHop{Kind: directory.HopHosted}
		}, "tls_only"},
		"evidence without": {func(e *directory.Endpoint) { e.TLSOnly, e.TLSOnlyEvidence = false, why }, "tls_only_evidence"},
	} {
		e := ep
		tc.edit(&e)
		_, err := fx.d.AddEndpoint(ctx, e)
		if f := fields(t, err); f[tc.field] == "" {
			t.Errorf("%s: AddEndpoint fields = %v, want one for %s", name, f, tc.field)
		}
	}
	if n := len(fx.d.Endpoints(ctx, directory.Filter{})); n != 0 {
		t.Fatalf("refused adds wrote %d endpoints", n)
	}

	e := ep
	e.TLSOnlyEvidence = why
	added := mustAdd(t, fx.d, e)
	if added.TLSOnlyEvidence != why {
		t.Errorf("stored evidence = %q", added.TLSOnlyEvidence)
	}
	ev := hasEvent(t, fx.audit, "endpoint.tls_only", "lab@nhs.example", "ok")
	if ev.Actor != "alice" || ev.Detail != "set: no S/MIME, verified TLS only; evidence: "+why {
		t.Errorf("set event = %+v", ev)
	}
	if ev := hasEvent(t, fx.audit, "endpoint.added", "lab@nhs.example", "ok"); !strings.Contains(ev.Detail, "TLS-only") {
		t.Errorf("added event = %+v, want it to say TLS-only", ev)
	}

	// Changing the evidence is audited; so is clearing, by another admin,
	// with the evidence that no longer applies.
	const why2 = why + "; extended to 2026-09 (CAB 1301)"
	added.TLSOnlyEvidence = why2
	if err := fx.d.UpdateEndpoint(ctx, added); err != nil {
		t.Fatalf("UpdateEndpoint(evidence): %v", err)
	}
	if evs := tlsOnlyEvents(fx.audit); len(evs) != 2 || evs[1].Detail != "evidence changed: "+why2 {
		t.Errorf("tls_only events after change = %+v", evs)
	}
	added.TLSOnly, added.TLSOnlyEvidence = false, ""
	bob := audit.WithActor(t.Context(), "bob")
	if err := fx.d.UpdateEndpoint(bob, added); err != nil {
		t.Fatalf("UpdateEndpoint(clear): %v", err)
	}
	evs := tlsOnlyEvents(fx.audit)
	if len(evs) != 3 || evs[2].Actor != "bob" || evs[2].Detail != "cleared: S/MIME required again; evidence was: "+why2 {
		t.Errorf("tls_only events after clear = %+v", evs)
	}
	if got := mustLookup(t, fx.d, "lab@nhs.example"); got.TLSOnly || got.TLSOnlyEvidence != "" {
		t.Errorf("after clear: TLSOnly %t, evidence %q", got.TLSOnly, got.TLSOnlyEvidence)
	}

	// Setting it on an existing endpoint needs evidence too.
	got := mustLookup(t, fx.d, "lab@nhs.example")
	got.TLSOnly = true
	if f := fields(t, fx.d.UpdateEndpoint(ctx, got)); f["tls_only_evidence"] == "" {
		t.Errorf("UpdateEndpoint(set without evidence) fields = %v", f)
	}
	got.TLSOnlyEvidence = why
	if err := fx.d.UpdateEndpoint(ctx, got); err != nil {
		t.Fatalf("UpdateEndpoint(set): %v", err)
	}
	if evs := tlsOnlyEvents(fx.audit); len(evs) != 4 || evs[3].Detail != "set: no S/MIME, verified TLS only; evidence: "+why {
		t.Errorf("tls_only events after set = %+v", evs)
	}
}

func tlsOnlyEvents(l *directorytest.AuditLog) []audit.Event {
	var out []audit.Event
	for _, ev := range l.Events() {
		if ev.Action == "endpoint.tls_only" {
			out = append(out, ev)
		}
	}
	return out
}
