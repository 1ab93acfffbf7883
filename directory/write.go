package directory

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"nhsrelay/audit"
)

// Audit outcomes.
const (
	outcomeOK      = "ok"
	outcomeRefused = "refused"
	outcomeFailed  = "failed"
)

// PutOrganisation adds or replaces an organisation (an administrator's
// entry; Source defaults to admin). An organisation put as closed or
// dormant has its pending and verified endpoints suspended in the same
// write. Invalid input gives a *ValidationError and writes nothing.
func (d *Directory) PutOrganisation(ctx context.Context, o Organisation) error {
	n, err := NormaliseOrganisation(o)
	if err != nil {
		d.record(ctx, "organisation.put", "", outcomeRefused, "ODS "+o.ODS+": "+err.Error())
		return err
	}
	if n.Source == "" {
		n.Source = SourceAdmin
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	old, existed := d.orgs[n.ODS]
	if existed && n.ImportedAt.IsZero() {
		n.ImportedAt = old.ImportedAt
	}
	reopened := existed && closedish(old) && !closedish(n)
	b := Batch{Organisations: []Organisation{n}}
	suspended := d.suspendForClosure(&b, n)
	var restored []Endpoint
	if reopened {
		restored = d.restoreAfterReopen(&b, old, n)
	}
	if err := d.commit(ctx, "put organisation "+n.ODS, b); err != nil {
		d.record(ctx, "organisation.put", "", outcomeFailed, "ODS "+n.ODS+": "+err.Error())
		return err
	}
	action := "organisation.added"
	if existed {
		action = "organisation.updated"
	}
	d.record(ctx, action, "", outcomeOK, fmt.Sprintf("ODS %s %q, %s", n.ODS, n.Name, n.Status))
	if reopened {
		d.record(ctx, "organisation.reopened", "", outcomeOK, "ODS "+n.ODS+" "+string(n.Status)+" again (was "+orgClosedReason(old)+")")
	}
	d.recordSuspensions(ctx, suspended)
	d.recordRestorations(ctx, restored)
	return nil
}

// suspendForClosure adds to b the suspension of o's pending and verified
// endpoints if o is closed or dormant, and returns them. The caller holds wmu.
func (d *Directory) suspendForClosure(b *Batch, o Organisation) []Endpoint {
	if o.Status != OrgClosed && o.Status != OrgDormant {
		return nil
	}
	reason := orgClosedReason(o)
	var out []Endpoint
	for _, e := range d.eps {
		if e.ODS != o.ODS || (e.Status != StatusPending && e.Status != StatusVerified) {
			continue
		}
		e.SuspendedFrom, e.SuspendedBy = e.Status, SuspendedByClosure
		e.Status, e.StatusReason, e.StatusAt = StatusSuspended, reason, d.cfg.Now()
		b.Endpoints = append(b.Endpoints, e)
		if _, ok := d.chals[e.ID]; ok {
			b.DeleteChallenges = append(b.DeleteChallenges, e.ID)
		}
		out = append(out, e)
	}
	return out
}

// restoreAfterReopen adds to b, for an organisation that was closed or
// dormant (old) and is open again (n), the return of the endpoints its
// closure suspended to the status they had (pending or verified; the
// verification's own expiry still applies). Endpoints suspended for any
// other reason — an administrator, an expiry — stay suspended. An endpoint
// suspended by a closure before causes were recorded is recognised by
// its reason, the closure's words, and returns as pending (its earlier
// status is unknown). The caller holds wmu.
func (d *Directory) restoreAfterReopen(b *Batch, old, n Organisation) []Endpoint {
	legacyReason := orgClosedReason(old)
	var out []Endpoint
	for _, e := range d.eps {
		if e.ODS != n.ODS || e.Status != StatusSuspended {
			continue
		}
		switch {
		case e.SuspendedBy == SuspendedByClosure:
			e.Status = e.SuspendedFrom
			if e.Status != StatusVerified {
				e.Status = StatusPending
			}
		case e.SuspendedBy == "" && e.StatusReason == legacyReason:
			e.Status = StatusPending
		default:
			continue
		}
		e.StatusReason, e.StatusAt, e.SuspendedBy, e.SuspendedFrom = "", time.Time{}, "", ""
		b.Endpoints = append(b.Endpoints, e)
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return strings.Compare(a.Address, b.Address) })
	return out
}

func (d *Directory) recordRestorations(ctx context.Context, eps []Endpoint) {
	for _, e := range eps {
		d.log.Info("directory: endpoint restored, its organisation reopened", "endpoint", e.Address, "ods", e.ODS, "status", e.Status)
		d.record(ctx, "endpoint.restored", e.Address, outcomeOK, "organisation "+e.ODS+" reopened; "+string(e.Status)+" again")
	}
}

func (d *Directory) recordSuspensions(ctx context.Context, eps []Endpoint) {
	for _, e := range eps {
		d.log.Warn("directory: endpoint suspended", "endpoint", e.Address, "ods", e.ODS, "reason", e.StatusReason)
		d.record(ctx, "endpoint.suspended", e.Address, outcomeOK, e.StatusReason)
	}
}

// AddEndpoint creates a pending endpoint with a new ID and returns it as
// stored. Status, verification and redirect are not set here: an endpoint
// becomes verified only by ConfirmChallenge or Attest.
func (d *Directory) AddEndpoint(ctx context.Context, e Endpoint) (Endpoint, error) {
	pre := fieldErrors{}
	if e.Status != "" && e.Status != StatusPending {
		pre.add("status", "a new endpoint starts pending; verify it with a challenge or an attestation")
	}
	if e.Verification != (Verification{}) {
		pre.add("verification", "is set by verification, not when adding")
	}
	if e.Redirect != "" {
		pre.add("redirect", "set a redirect once the endpoint exists")
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	e.ID = newID()
	e.Status, e.StatusReason, e.Verification, e.Redirect = StatusPending, "", Verification{}, ""
	e.StatusAt, e.Peer = time.Time{}, ""
	e.SuspendedBy, e.SuspendedFrom = "", ""
	n, err := d.checkEndpoint(e)
	if err != nil || len(pre) > 0 {
		err = mergeFields(pre, err)
		d.record(ctx, "endpoint.add", e.Address, outcomeRefused, err.Error())
		return Endpoint{}, err
	}
	if err := d.commit(ctx, "add endpoint "+n.Address, Batch{Endpoints: []Endpoint{n}}); err != nil {
		d.record(ctx, "endpoint.add", n.Address, outcomeFailed, err.Error())
		return Endpoint{}, err
	}
	detail := fmt.Sprintf("id %s, ODS %s, %s, next hop %s", n.ID, n.ODS, n.Purpose, path(n))
	if n.TLSOnly {
		detail += ", TLS-only exception"
	}
	d.record(ctx, "endpoint.added", n.Address, outcomeOK, detail)
	d.recordTLSOnly(ctx, Endpoint{}, n)
	return n, nil
}

// mergeFields joins pre-checked field errors with a *ValidationError.
func mergeFields(pre fieldErrors, err error) error {
	var ve *ValidationError
	if errors.As(err, &ve) {
		for k, v := range ve.Fields {
			pre.add(k, "%s", v)
		}
	}
	return pre.err()
}

// UpdateEndpoint replaces the fields an administrator sets (address,
// organisation, purpose, next hop, certificates, fax numbers, contacts,
// TLSOnly and its evidence; the exception is audited on its own as
// endpoint.tls_only). Status, status reason, verification and redirect are kept as
// stored: they change only through Suspend, Retire, ConfirmChallenge,
// Attest and SetRedirect; a Status that differs from the stored one is a
// validation error. Changing the address or organisation of an endpoint
// makes it pending again: its verification was for the old one.
func (d *Directory) UpdateEndpoint(ctx context.Context, e Endpoint) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	return d.updateLocked(ctx, e)
}

// SetCertificates replaces endpoint id's S/MIME certificates (DER; a leaf
// and the CA certificates of its chain) in one audited write
// (endpoint.certificates, naming each certificate and its expiry). nil
// removes them all. Invalid certificates give a *ValidationError.
func (d *Directory) SetCertificates(ctx context.Context, id string, certs [][]byte) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	e, ok := d.eps[id]
	if !ok {
		return fmt.Errorf("directory: set certificates %q: %w", clip(id), ErrNotFound)
	}
	old := e.Certificates
	e.Certificates = certs
	if err := d.updateLocked(ctx, e); err != nil {
		return err
	}
	if slices.EqualFunc(old, certs, func(x, y []byte) bool { return string(x) == string(y) }) {
		return nil
	}
	names := make([]string, 0, len(certs))
	for _, der := range certs {
		if c, err := x509.ParseCertificate(der); err == nil { // checkEndpoint parsed them all
			n := certName(c) + " until " + day(c.NotAfter)
			if c.IsCA {
				n = "CA " + n
			}
			names = append(names, n)
		}
	}
	detail := fmt.Sprintf("%d certificate(s): %s", len(certs), strings.Join(names, "; "))
	if len(certs) == 0 {
		detail = "all certificates removed"
	}
	d.record(ctx, "endpoint.certificates", e.Address, outcomeOK, detail)
	return nil
}

// updateLocked is UpdateEndpoint for a caller holding wmu.
func (d *Directory) updateLocked(ctx context.Context, e Endpoint) error {
	old, ok := d.eps[e.ID]
	if !ok {
		return fmt.Errorf("directory: update endpoint %q: %w", clip(e.ID), ErrNotFound)
	}
	if old.Status == StatusRetired {
		return fmt.Errorf("directory: update endpoint %s: it is retired; add a new endpoint instead: %w", old.Address, ErrConflict)
	}
	if old.Peer != "" {
		return fmt.Errorf("directory: update endpoint %s: it is published by federation peer %s, whose sync keeps it; change it there (suspend or retire work here): %w",
			old.Address, old.Peer, ErrConflict)
	}
	pre := fieldErrors{}
	if e.Status != "" && e.Status != old.Status {
		pre.add("status", "changes through verify, suspend and retire, not update")
	}
	e.Status, e.StatusReason, e.Verification, e.Redirect = old.Status, old.StatusReason, old.Verification, old.Redirect
	e.StatusAt, e.Peer = old.StatusAt, old.Peer
	e.SuspendedBy, e.SuspendedFrom = old.SuspendedBy, old.SuspendedFrom
	n, err := d.checkEndpoint(e)
	if err != nil || len(pre) > 0 {
		err = mergeFields(pre, err)
		d.record(ctx, "endpoint.update", old.Address, outcomeRefused, err.Error())
		return err
	}
	changed := changedFields(old, n)
	if len(changed) == 0 {
		return nil
	}
	b := Batch{}
	if !strings.EqualFold(n.Address, old.Address) || n.ODS != old.ODS {
		if n.Status == StatusVerified || n.Status == StatusSuspended {
			n.Status, n.StatusReason, n.Verification = StatusPending, "address or organisation changed; verify again", Verification{}
			n.SuspendedBy, n.SuspendedFrom = "", ""
		}
		if _, ok := d.chals[n.ID]; ok {
			b.DeleteChallenges = []string{n.ID}
		}
	}
	b.Endpoints = []Endpoint{n}
	if err := d.commit(ctx, "update endpoint "+n.Address, b); err != nil {
		d.record(ctx, "endpoint.update", old.Address, outcomeFailed, err.Error())
		return err
	}
	d.record(ctx, "endpoint.updated", n.Address, outcomeOK, "changed "+strings.Join(changed, ", ")+"; now "+string(n.Status))
	d.recordTLSOnly(ctx, old, n)
	return nil
}

// recordTLSOnly audits a change to the TLS-only exception between old and
// n (old is zero for a new endpoint) as endpoint.tls_only, with the
// evidence: set, evidence changed, or cleared.
func (d *Directory) recordTLSOnly(ctx context.Context, old, n Endpoint) {
	var detail string
	switch {
	case n.TLSOnly && !old.TLSOnly:
		detail = "set: no S/MIME, verified TLS only; evidence: " + n.TLSOnlyEvidence
	case n.TLSOnly && n.TLSOnlyEvidence != old.TLSOnlyEvidence:
		detail = "evidence changed: " + n.TLSOnlyEvidence
	case !n.TLSOnly && old.TLSOnly:
		detail = "cleared: S/MIME required again; evidence was: " + old.TLSOnlyEvidence
	default:
		return
	}
	d.log.Warn("directory: TLS-only exception", "endpoint", n.Address, "change", detail[:strings.IndexByte(detail, ':')])
	d.record(ctx, "endpoint.tls_only", n.Address, outcomeOK, detail)
}

func changedFields(a, b Endpoint) []string {
	var out []string
	add := func(name string, same bool) {
		if !same {
			out = append(out, name)
		}
	}
	add("address", a.Address == b.Address)
	add("ods", a.ODS == b.ODS)
	add("purpose", a.Purpose == b.Purpose)
	add("next_hop", a.NextHop == b.NextHop)
	add("certificates", slices.EqualFunc(a.Certificates, b.Certificates, func(x, y []byte) bool { return string(x) == string(y) }))
	add("tls_only", a.TLSOnly == b.TLSOnly)
	add("tls_only_evidence", a.TLSOnlyEvidence == b.TLSOnlyEvidence)
	add("fax_numbers", slices.Equal(a.FaxNumbers, b.FaxNumbers))
	add("contacts", slices.Equal(a.Contacts, b.Contacts))
	return out
}

// reasonText checks a reason or evidence given by a person.
func reasonText(field, s string, max int) (string, error) {
	f := fieldErrors{}
	s = f.text(field, s, max, true)
	return s, f.err()
}

// Suspend stops clinical mail to an endpoint, with a reason for the
// refusals senders will see. A suspended endpoint returns to service by
// being verified again.
func (d *Directory) Suspend(ctx context.Context, id, reason string) error {
	reason, err := reasonText("reason", reason, 200)
	if err != nil {
		return err
	}
	return d.setStatus(ctx, id, StatusSuspended, reason, "endpoint.suspended")
}

// Retire ends an endpoint for good; its address may then be used by a new
// endpoint. Retiring a retired endpoint does nothing.
func (d *Directory) Retire(ctx context.Context, id, reason string) error {
	reason, err := reasonText("reason", reason, 200)
	if err != nil {
		return err
	}
	return d.setStatus(ctx, id, StatusRetired, reason, "endpoint.retired")
}

func (d *Directory) setStatus(ctx context.Context, id string, st EndpointStatus, reason, action string) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	e, ok := d.eps[id]
	if !ok {
		return fmt.Errorf("directory: %s %q: %w", st, clip(id), ErrNotFound)
	}
	switch {
	case e.Status == StatusRetired && st == StatusRetired:
		return nil
	case e.Status == StatusRetired:
		return fmt.Errorf("directory: %s %s: it is retired: %w", st, e.Address, ErrConflict)
	}
	e.Status, e.StatusReason, e.StatusAt, e.SuspendedBy, e.SuspendedFrom = st, reason, d.cfg.Now(), "", ""
	if st == StatusSuspended {
		e.SuspendedBy = SuspendedByAdmin
	}
	b := Batch{Endpoints: []Endpoint{e}}
	if _, ok := d.chals[id]; ok {
		b.DeleteChallenges = []string{id}
	}
	if err := d.commit(ctx, string(st)+" "+e.Address, b); err != nil {
		d.record(ctx, action, e.Address, outcomeFailed, err.Error())
		return err
	}
	d.log.Warn("directory: endpoint "+string(st), "endpoint", e.Address, "reason", reason)
	d.record(ctx, action, e.Address, outcomeOK, reason)
	return nil
}

// Attest verifies an endpoint on an administrator's word, with the
// evidence they relied on ("phoned practice manager on 01632 960000").
func (d *Directory) Attest(ctx context.Context, id, evidence string) error {
	evidence, err := reasonText("evidence", evidence, 1000)
	if err != nil {
		return err
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	return d.verify(ctx, id, MethodAttestation, evidence)
}

// verify marks an endpoint verified now. The caller holds wmu.
func (d *Directory) verify(ctx context.Context, id, method, evidence string) error {
	e, ok := d.eps[id]
	if !ok {
		return fmt.Errorf("directory: verify %q: %w", clip(id), ErrNotFound)
	}
	if err := d.canVerify(e); err != nil {
		d.record(ctx, "endpoint.verify", e.Address, outcomeRefused, err.Error())
		return err
	}
	now := d.cfg.Now()
	e.Status, e.StatusReason, e.StatusAt, e.SuspendedBy, e.SuspendedFrom = StatusVerified, "", time.Time{}, "", ""
	e.Verification = Verification{By: audit.ActorFrom(ctx), At: now, Method: method, Evidence: evidence, Expires: now.Add(d.cfg.ReverifyAfter)}
	b := Batch{Endpoints: []Endpoint{e}}
	if _, ok := d.chals[id]; ok {
		b.DeleteChallenges = []string{id}
	}
	if err := d.commit(ctx, "verify "+e.Address, b); err != nil {
		d.record(ctx, "endpoint.verify", e.Address, outcomeFailed, err.Error())
		return err
	}
	detail := fmt.Sprintf("by %s until %s", method, day(e.Verification.Expires))
	if evidence != "" {
		detail += ": " + evidence
	}
	d.log.Info("directory: endpoint verified", "endpoint", e.Address, "method", method)
	d.record(ctx, "endpoint.verified", e.Address, outcomeOK, detail)
	return nil
}

// canVerify says why e cannot be verified now, if it cannot.
func (d *Directory) canVerify(e Endpoint) error {
	if e.Status == StatusRetired {
		return fmt.Errorf("directory: verify %s: it is retired: %w", e.Address, ErrConflict)
	}
	o, ok := d.orgs[e.ODS]
	switch {
	case !ok:
		return fmt.Errorf("directory: verify %s: organisation %s is not in the directory: %w", e.Address, e.ODS, ErrConflict)
	case o.Status == OrgClosed || o.Status == OrgDormant:
		return fmt.Errorf("directory: verify %s: %s (%s): %w", e.Address, orgClosedReason(o), o.ODS, ErrConflict)
	}
	return nil
}

// SetRedirect sends mail for endpoint id to the endpoint at address (or
// with ID) to, as an administrator's explicit decision; "" removes it.
// Redirects are one hop: the target must not redirect, and an endpoint
// others redirect to cannot itself be redirected.
func (d *Directory) SetRedirect(ctx context.Context, id, to string) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	e, ok := d.eps[id]
	if !ok {
		return fmt.Errorf("directory: redirect %q: %w", clip(id), ErrNotFound)
	}
	target := ""
	if to = strings.TrimSpace(to); to != "" {
		t, ok := d.eps[to]
		if !ok {
			addr, err := NormaliseAddress(to)
			if err != nil {
				return &ValidationError{Fields: map[string]string{"redirect": err.Error()}}
			}
			if t, ok = d.exact(addr); !ok {
				return &ValidationError{Fields: map[string]string{"redirect": "no endpoint " + addr + " in the directory"}}
			}
		}
		f := fieldErrors{}
		switch {
		case t.ID == e.ID:
			f.add("redirect", "an endpoint cannot redirect to itself")
		case t.Status == StatusRetired:
			f.add("redirect", "%s is retired", t.Address)
		case t.Redirect != "":
			f.add("redirect", "%s is itself redirected to %s; redirects are one hop", t.Address, t.Redirect)
		}
		for _, o := range d.eps {
			if o.Redirect != "" && strings.EqualFold(o.Redirect, e.Address) {
				f.add("redirect", "%s is the target of %s's redirect; redirects are one hop", e.Address, o.Address)
			}
		}
		if err := f.err(); err != nil {
			d.record(ctx, "endpoint.redirect", e.Address, outcomeRefused, err.Error())
			return err
		}
		target = t.Address
	}
	if e.Redirect == target {
		return nil
	}
	e.Redirect = target
	if err := d.commit(ctx, "redirect "+e.Address, Batch{Endpoints: []Endpoint{e}}); err != nil {
		d.record(ctx, "endpoint.redirect", e.Address, outcomeFailed, err.Error())
		return err
	}
	detail := "mail for " + e.Address + " now goes to " + target
	if target == "" {
		detail = "redirect removed; mail for " + e.Address + " goes to it again"
	}
	d.log.Warn("directory: redirect set", "endpoint", e.Address, "to", target)
	d.record(ctx, "endpoint.redirect", e.Address, outcomeOK, detail)
	return nil
}
