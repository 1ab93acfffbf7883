package directory

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"fmt"
	"slices"
	"strings"
	"time"
)

// PeerEndpoint is one endpoint as a federation peer publishes it
// (directory/peers reads it from the peer's FHIR Endpoint search and checks
// its certificates against the peer's CA before handing it here).
type PeerEndpoint struct {
	RemoteID     string // the peer's Endpoint.id
	Address      string
	ODS          string
	OrgName      string // the peer's name for the organisation (used if it is new here)
	Purpose      string
	NextHop      NextHop // the peer's MX; never hosted
	Certificates [][]byte
	Contacts     []string
	// Active is false for an endpoint the peer has suspended or turned off;
	// Reason then says what the peer said.
	Active bool
	Reason string
	// Evidence is recorded as the verification evidence: the peer's URL
	// and the certificate fingerprint.
	Evidence string
}

// PeerSyncResult says what one SyncPeer did, by address, each sorted.
type PeerSyncResult struct {
	Added       []string `json:"added"`
	Changed     []string `json:"changed"`
	Suspended   []string `json:"suspended"`
	Reactivated []string `json:"reactivated"`
	Retired     []string `json:"retired"`
	Unchanged   int      `json:"unchanged"`
	// CertChanged holds the endpoints whose certificates changed (renewals
	// included); they are also in Changed.
	CertChanged []string `json:"cert_changed"`
	// Conflicts are endpoints not imported because an endpoint of this
	// relay or of another peer already has the address: "addr: why".
	Conflicts []string `json:"conflicts"`
	// Rejected are endpoints not imported because a field is bad: "addr: why".
	Rejected  []string `json:"rejected"`
	OrgsAdded []string `json:"orgs_added"`
}

// peerAuditLimit is how many endpoint additions one sync audits one by one;
// beyond it (a first import of a national directory) the additions are
// counted in the peer.synced event, as an ODS import is.
const peerAuditLimit = 100

// PeerEndpointID is the local ID of a peer's endpoint: "ep-" and 16
// base32 characters of SHA-256(peer, remote ID), so every sync finds the
// same record and no two peers' endpoints can share an ID.
func PeerEndpointID(peer, remoteID string) string {
	sum := sha256.Sum256([]byte("nhsrelay-peer\x00" + peer + "\x00" + remoteID))
	return "ep-" + strings.ToLower(base32.StdEncoding.EncodeToString(sum[:10]))
}

// peerSuspendPrefix starts the status reason of an endpoint the peer
// suspended, so that a later sync can tell it from a suspension made here
// (which it never lifts).
func peerSuspendPrefix(peer string) string { return "suspended at federation peer " + peer }

// SyncPeer makes this directory's copy of peer's endpoints equal to eps,
// the peer's full list, in one atomic write: new ones are added verified
// by federation (Verification.Method MethodFederation), changed ones
// updated (next hop, certificates, contacts, purpose), ones the peer no
// longer publishes retired, and ones it suspended suspended here too. An
// endpoint of this relay, or of another peer, is never overwritten: an
// address already in use by one is a conflict and is skipped. A
// suspension or retirement made here by an administrator is kept.
// Organisations the directory does not know are added (Source peer); known
// ones are left as they are (ODS data wins).
func (d *Directory) SyncPeer(ctx context.Context, peer string, eps []PeerEndpoint) (PeerSyncResult, error) {
	var res PeerSyncResult
	if peer == "" {
		return res, &ValidationError{Fields: map[string]string{"peer": "is required"}}
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	now := d.cfg.Now()
	var b Batch
	seen := map[string]bool{}
	addrs := map[string]bool{} // addresses taken in this batch
	orgs := map[string]bool{}  // organisations added in this batch
	var audits []func()
	d.mu.RLock()
	for _, pe := range eps {
		n, problem := d.peerEndpoint(peer, pe)
		if problem != "" {
			res.Rejected = append(res.Rejected, clip(pe.Address)+": "+problem)
			continue
		}
		la := strings.ToLower(n.Address)
		if why := d.peerConflict(n, addrs[la]); why != "" {
			res.Conflicts = append(res.Conflicts, n.Address+": "+why)
			continue
		}
		seen[n.ID], addrs[la] = true, true
		if _, ok := d.orgs[n.ODS]; !ok && !orgs[n.ODS] {
			o, err := NormaliseOrganisation(Organisation{ODS: n.ODS, Name: cmpOr(pe.OrgName, n.ODS), Source: SourcePeer, ImportedAt: now})
			if err != nil {
				o = Organisation{ODS: n.ODS, Name: n.ODS, Status: OrgActive, Source: SourcePeer, ImportedAt: now}
			}
			b.Organisations = append(b.Organisations, o)
			orgs[n.ODS] = true
			res.OrgsAdded = append(res.OrgsAdded, n.ODS)
		}
		old, existed := d.eps[n.ID]
		if existed && old.Status == StatusRetired && !strings.HasPrefix(old.StatusReason, peerGoneReason(peer)) {
			res.Unchanged++ // retired here by an administrator: stays so
			continue
		}
		d.peerStatus(&n, old, existed, pe, peer, now)
		if existed && samePeerEndpoint(old, n) {
			res.Unchanged++
			continue
		}
		b.Endpoints = append(b.Endpoints, n)
		audits = append(audits, d.peerChange(ctx, &res, old, existed, n, peer))
	}
	for _, e := range d.eps {
		if e.Peer != peer || seen[e.ID] || e.Status == StatusRetired {
			continue
		}
		old := e
		e.Status, e.StatusReason, e.StatusAt = StatusRetired, peerGoneReason(peer), now
		b.Endpoints = append(b.Endpoints, e)
		res.Retired = append(res.Retired, e.Address)
		audits = append(audits, func() {
			d.record(ctx, "endpoint.retired", old.Address, outcomeOK, e.StatusReason)
		})
	}
	d.mu.RUnlock()
	for _, l := range [][]string{res.Added, res.Changed, res.Suspended, res.Reactivated, res.Retired,
		res.CertChanged, res.Conflicts, res.Rejected, res.OrgsAdded} {
		slices.Sort(l)
	}
	if err := d.commit(ctx, "sync peer "+peer, b); err != nil {
		d.record(ctx, "peer.synced", "", outcomeFailed, "peer "+peer+": "+err.Error())
		return PeerSyncResult{}, err
	}
	for _, a := range audits {
		if a != nil {
			a()
		}
	}
	detail := fmt.Sprintf("peer %s: %d added, %d changed (%d certificate changes), %d suspended, %d reactivated, %d retired, %d unchanged, %d conflicts, %d rejected, %d organisations added",
		peer, len(res.Added), len(res.Changed), len(res.CertChanged), len(res.Suspended), len(res.Reactivated),
		len(res.Retired), res.Unchanged, len(res.Conflicts), len(res.Rejected), len(res.OrgsAdded))
	d.record(ctx, "peer.synced", "", outcomeOK, detail)
	for _, c := range res.Conflicts {
		d.record(ctx, "peer.conflict", "", outcomeRefused, "peer "+peer+": "+c)
	}
	return res, nil
}

// peerEndpoint checks pe's fields as checkEndpoint does an administrator's
// (but by index, not by a scan: a national sync has 50,000 of them) and
// returns the endpoint record, or a problem in words. The caller holds d.mu.
func (d *Directory) peerEndpoint(peer string, pe PeerEndpoint) (Endpoint, string) {
	f := fieldErrors{}
	addr, err := NormaliseAddress(pe.Address)
	if err != nil {
		return Endpoint{}, err.Error()
	}
	ods, err := normaliseODS(pe.ODS)
	if err != nil {
		return Endpoint{}, "organisation: " + err.Error()
	}
	if pe.RemoteID == "" {
		return Endpoint{}, "the peer gave it no id"
	}
	purpose := cmpOr(pe.Purpose, PurposeGeneral)
	if !slices.Contains(Purposes(), purpose) {
		purpose = PurposeGeneral // a purpose this relay does not know: general
	}
	hop := checkNextHop(f, pe.NextHop)
	switch {
	case hop.Kind == HopHosted:
		f.add("next_hop", "a peer's endpoint cannot be hosted here")
	case hop.TLS != TLSVerified:
		f.add("next_hop.tls", "mail to a peer goes over verified TLS only")
	}
	if len(pe.Certificates) > maxCertificates {
		f.add("certificates", "has more than %d certificates", maxCertificates)
	}
	for _, der := range pe.Certificates {
		if _, err := x509.ParseCertificate(der); err != nil {
			f.add("certificates", "not a DER X.509 certificate: %v", err)
		}
	}
	contacts := f.textList("contacts", pe.Contacts, 20, "entries", 200)
	if err := f.err(); err != nil {
		return Endpoint{}, err.Error()
	}
	return Endpoint{ID: PeerEndpointID(peer, pe.RemoteID), Address: addr, ODS: ods, Purpose: purpose,
		NextHop: hop, Certificates: pe.Certificates, Contacts: contacts, Peer: peer}, ""
}

// peerConflict says why n may not be written, if another live endpoint
// (this relay's or another peer's) has its address. The caller holds d.mu.
func (d *Directory) peerConflict(n Endpoint, dupInBatch bool) string {
	if dupInBatch {
		return "the peer publishes this address twice; the first is kept"
	}
	if old, ok := d.eps[n.ID]; ok && old.Peer != n.Peer {
		return "endpoint " + old.ID + " is not this peer's" // a hash collision: never overwrite
	}
	for _, id := range d.byAddr[strings.ToLower(n.Address)] {
		o := d.eps[id]
		if o.ID == n.ID || o.Status == StatusRetired {
			continue
		}
		if o.Peer == "" {
			return "this relay's own endpoint " + o.ID + " has the address; it is kept"
		}
		return "endpoint " + o.ID + " from federation peer " + o.Peer + " has the address; it is kept"
	}
	return ""
}

// peerStatus sets n's status and verification from what the peer says and
// what n was here (old, if existed). The caller holds d.mu.
func (d *Directory) peerStatus(n *Endpoint, old Endpoint, existed bool, pe PeerEndpoint, peer string, now time.Time) {
	n.Redirect = old.Redirect
	ver := Verification{By: "peer:" + peer, At: now, Method: MethodFederation, Evidence: pe.Evidence,
		Expires: now.Add(d.cfg.ReverifyAfter)}
	// Keep the recorded verification while the evidence is the same and
	// at least half its time remains, so an unchanged endpoint is not
	// rewritten on every sync.
	if existed && old.Verification.Method == MethodFederation && old.Verification.Evidence == pe.Evidence &&
		old.Verification.Expires.Sub(now) > d.cfg.ReverifyAfter/2 {
		ver = old.Verification
	}
	n.Verification = ver
	local := existed && old.Status == StatusSuspended && !strings.HasPrefix(old.StatusReason, peerSuspendPrefix(peer))
	switch {
	case local: // suspended here by an administrator: stays so
		n.Status, n.StatusReason, n.StatusAt = old.Status, old.StatusReason, old.StatusAt
	case !pe.Active:
		reason := peerSuspendPrefix(peer)
		if pe.Reason != "" {
			reason += ": " + pe.Reason
		}
		n.Status, n.StatusReason, n.StatusAt = StatusSuspended, clip200(reason), old.StatusAt
		if !existed || old.Status != StatusSuspended || old.StatusReason != n.StatusReason {
			n.StatusAt = now
		}
	default:
		n.Status, n.StatusReason, n.StatusAt = StatusVerified, "", time.Time{}
	}
}

// peerGoneReason is the status reason of an endpoint a sync retired
// because the peer stopped publishing it (it comes back if the peer
// publishes it again; one an administrator retired does not).
func peerGoneReason(peer string) string { return "no longer published by federation peer " + peer }

func clip200(s string) string {
	if len(s) > 200 {
		return s[:200]
	}
	return s
}

// samePeerEndpoint reports whether a sync would write nothing new.
func samePeerEndpoint(a, b Endpoint) bool {
	return len(changedFields(a, b)) == 0 && a.Status == b.Status && a.StatusReason == b.StatusReason &&
		a.Verification == b.Verification && a.Peer == b.Peer
}

// peerChange files n's change in res and returns its audit, or nil for an
// addition past peerAuditLimit (counted in peer.synced).
func (d *Directory) peerChange(ctx context.Context, res *PeerSyncResult, old Endpoint, existed bool, n Endpoint, peer string) func() {
	if !existed || old.Status == StatusRetired {
		res.Added = append(res.Added, n.Address)
		if len(res.Added) > peerAuditLimit {
			return nil
		}
		return func() {
			d.record(ctx, "endpoint.added", n.Address, outcomeOK, fmt.Sprintf("id %s, ODS %s, from federation peer %s, next hop %s, %s; %s",
				n.ID, n.ODS, peer, path(n), n.Status, n.Verification.Evidence))
		}
	}
	changed := changedFields(old, n)
	certs := slices.Contains(changed, "certificates")
	if certs {
		res.CertChanged = append(res.CertChanged, n.Address)
	}
	switch {
	case n.Status == StatusSuspended && old.Status != StatusSuspended:
		res.Suspended = append(res.Suspended, n.Address)
	case n.Status == StatusVerified && old.Status == StatusSuspended:
		res.Reactivated = append(res.Reactivated, n.Address)
	}
	if len(changed) > 0 {
		res.Changed = append(res.Changed, n.Address)
	}
	return func() {
		if len(changed) > 0 {
			d.record(ctx, "endpoint.updated", n.Address, outcomeOK, "by federation peer "+peer+": changed "+strings.Join(changed, ", "))
		}
		if certs {
			d.log.Warn("directory: peer endpoint certificate changed", "peer", peer, "endpoint", n.Address)
			d.record(ctx, "endpoint.certificates", n.Address, outcomeOK, "by federation peer "+peer+": "+n.Verification.Evidence)
		}
		switch {
		case n.Status == StatusSuspended && old.Status != StatusSuspended:
			d.log.Warn("directory: endpoint suspended", "endpoint", n.Address, "reason", n.StatusReason)
			d.record(ctx, "endpoint.suspended", n.Address, outcomeOK, n.StatusReason)
		case n.Status == StatusVerified && old.Status != StatusVerified:
			d.record(ctx, "endpoint.verified", n.Address, outcomeOK, "by federation: "+n.Verification.Evidence)
		}
	}
}
