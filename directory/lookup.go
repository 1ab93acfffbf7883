package directory

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"nhsrelay/audit"
)

// CheckRecipient is the policy at RCPT time (smtpd asks it for each
// recipient). A verified endpoint is returned with a nil error; an unknown
// address gives an error wrapping ErrNotFound; a known endpoint that may not
// receive clinical mail now gives a *NotVerifiedError whose Reason says why
// in words and whose Successor names a verified endpoint of the successor
// organisation, if there is one. Mail is never rerouted to a successor
// automatically; only an administrator's redirect (SetRedirect) does that,
// and then the redirect target is returned. Resolve says also which
// endpoint the address named, so that the relay can audit the redirect.
func (d *Directory) CheckRecipient(ctx context.Context, addr string) (Endpoint, error) {
	r, err := d.Resolve(ctx, addr)
	if err != nil {
		return Endpoint{}, err
	}
	return r.Target, nil
}

// Resolution is where mail for an address goes.
type Resolution struct {
	// Address is the address asked about, normalised.
	Address string
	// Requested is the endpoint the address names: its mailbox's, else its
	// domain's.
	Requested Endpoint
	// Target is where mail goes: Requested, or the endpoint an
	// administrator redirected it to (SetRedirect, one hop).
	Target Endpoint
	// Redirected is true when Target is a redirect target.
	Redirected bool
}

// RedirectEvent is the audit event for mail that follows r's redirect
// ("endpoint.redirect_followed", from → to). The directory audits setting a
// redirect; following one is per message, so the relay records this event,
// once per message (it sets Time, Actor and QueueID).
func (r Resolution) RedirectEvent() audit.Event {
	return audit.Event{Action: "endpoint.redirect_followed", Endpoint: r.Requested.Address, Outcome: outcomeOK,
		Detail: "mail for " + r.Address + " follows the administrator's redirect from " +
			r.Requested.Address + " to " + r.Target.Address}
}

// Resolve is CheckRecipient with the whole answer: the endpoint the address
// names and where its mail goes. Its errors are CheckRecipient's; with a
// *NotVerifiedError, Requested (and Target, if the redirect target exists)
// are set, so that a refusal can name them.
func (d *Directory) Resolve(ctx context.Context, addr string) (Resolution, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	r, err := d.resolveLocked(addr)
	if err == nil && r.Redirected {
		d.log.Debug("directory: recipient redirected", "rcpt", r.Address, "endpoint", r.Target.Address)
	}
	return r, err
}

// Usable says whether clinical mail to e would be accepted now, by the
// rule CheckRecipient applies (status, verification expiry, organisation
// closed or missing, redirect target); if not, reason says why in words,
// as a refusal would. The FHIR API derives Endpoint.status from it, so the
// two never disagree.
func (d *Directory) Usable(e Endpoint) (ok bool, reason string) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	_, err := d.follow(e)
	if err == nil {
		return true, ""
	}
	var nv *NotVerifiedError
	if errors.As(err, &nv) {
		reason = nv.Reason
		if nv.Successor != "" {
			reason += "; successor: " + nv.Successor
		}
		return false, reason
	}
	return false, err.Error()
}

// refusal returns nil if e may receive clinical mail now, or why not.
// asked is the address the sender used. The caller holds d.mu.
func (d *Directory) refusal(e Endpoint, asked string) error {
	nv := &NotVerifiedError{Address: asked, Status: e.Status}
	if !strings.EqualFold(asked, e.Address) && !strings.HasSuffix(strings.ToLower(asked), "@"+strings.ToLower(e.Address)) {
		nv.Address = asked + " (redirected to " + e.Address + ")"
	}
	org, hasOrg := d.orgs[e.ODS]
	switch e.Status {
	case StatusVerified:
		// Verified, but not now: refused as suspended (CheckExpiry or the
		// next import will record it so), with the same words.
		now := d.cfg.Now()
		nv.Status = StatusSuspended
		switch {
		case !e.Verification.Expires.IsZero() && !now.Before(e.Verification.Expires):
			nv.Reason = "suspended: verification expired on " + day(e.Verification.Expires) + "; verify again"
		case !hasOrg:
			nv.Reason = "suspended: organisation " + e.ODS + " is not in the directory"
		case org.Status == OrgClosed || org.Status == OrgDormant:
			nv.Reason = "suspended: " + orgClosedReason(org)
		default:
			return d.certRefusal(e, nv)
		}
	case StatusPending:
		nv.Reason = "not yet verified"
	case StatusSuspended:
		nv.Reason = "suspended"
		if e.StatusReason != "" {
			nv.Reason += ": " + e.StatusReason
		}
	case StatusRetired:
		nv.Reason = "retired"
		if e.StatusReason != "" {
			nv.Reason += ": " + e.StatusReason
		}
	default:
		nv.Reason = "in unknown status " + string(e.Status)
	}
	if hasOrg && org.Successor != "" {
		nv.Successor = d.successor(org.Successor, e.Purpose)
	}
	return nv
}

// orgClosedReason says in words why an organisation's endpoints are suspended.
func orgClosedReason(o Organisation) string {
	what := "organisation"
	if o.Kind == "gp-practice" || o.Kind == "" {
		what = "practice"
	}
	switch {
	case o.Status == OrgDormant:
		return what + " dormant"
	case o.ClosedOn.IsZero():
		return what + " closed"
	default:
		return what + " closed on " + day(o.ClosedOn)
	}
}

// successor returns "<ODS> <address>" of a verified endpoint of the
// organisation ods, preferring the same purpose, then general mail. The
// caller holds d.mu.
func (d *Directory) successor(ods, purpose string) string {
	now := d.cfg.Now()
	var best Endpoint
	rank := func(e Endpoint) int {
		switch e.Purpose {
		case purpose:
			return 0
		case PurposeGeneral:
			return 1
		}
		return 2
	}
	for _, e := range d.eps {
		if e.ODS != ods || e.Status != StatusVerified || e.Redirect != "" ||
			!e.Verification.Expires.IsZero() && !now.Before(e.Verification.Expires) {
			continue
		}
		if best.ID == "" || cmp.Or(cmp.Compare(rank(e), rank(best)), strings.Compare(e.Address, best.Address)) < 0 {
			best = e
		}
	}
	if best.ID == "" {
		return ""
	}
	return ods + " " + best.Address
}

// Lookup finds the endpoint for addr, in any status: the exact mailbox
// first, then the endpoint for its whole domain. Case is folded.
func (d *Directory) Lookup(ctx context.Context, addr string) (Endpoint, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.lookup(addr)
}

func (d *Directory) lookup(addr string) (Endpoint, error) {
	a, err := NormaliseAddress(addr)
	if err != nil {
		return Endpoint{}, fmt.Errorf("directory: lookup: %v: %w", err, ErrNotFound)
	}
	if e, ok := d.exact(a); ok {
		return e, nil
	}
	if at := strings.LastIndexByte(a, '@'); at >= 0 {
		if e, ok := d.exact(a[at+1:]); ok {
			return e, nil
		}
	}
	return Endpoint{}, fmt.Errorf("directory: lookup %s: %w", a, ErrNotFound)
}

// exact returns the endpoint whose address is a (case folded): the live one
// if there is one, else the most recently verified retired one. The caller
// holds d.mu.
func (d *Directory) exact(a string) (Endpoint, bool) {
	var found Endpoint
	for _, id := range d.byAddr[strings.ToLower(a)] {
		e := d.eps[id]
		if e.Status != StatusRetired {
			return e, true
		}
		if found.ID == "" || e.Verification.At.After(found.Verification.At) {
			found = e
		}
	}
	return found, found.ID != ""
}

// Endpoint returns the endpoint with id.
func (d *Directory) Endpoint(ctx context.Context, id string) (Endpoint, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	e, ok := d.eps[id]
	if !ok {
		return Endpoint{}, fmt.Errorf("directory: endpoint %q: %w", clip(id), ErrNotFound)
	}
	return e, nil
}

// Endpoints returns the endpoints f selects, sorted by address then ID.
func (d *Directory) Endpoints(ctx context.Context, f Filter) []Endpoint {
	addr := strings.ToLower(strings.TrimSpace(f.Address))
	addr = strings.TrimPrefix(addr, "mailto:")
	words := searchWords(f.Name)
	d.mu.RLock()
	var out []Endpoint
	for _, e := range d.eps {
		a := strings.ToLower(e.Address)
		switch {
		case f.ODS != "" && !strings.EqualFold(e.ODS, strings.TrimSpace(f.ODS)):
		case f.Status != "" && e.Status != f.Status:
		case addr != "" && a != addr && (strings.Contains(addr, "@") || !strings.HasSuffix(a, "@"+addr)):
		case len(words) > 0 && !nameMatches(d.orgs[e.ODS].Name, words):
		default:
			out = append(out, e)
		}
	}
	d.mu.RUnlock()
	slices.SortFunc(out, func(a, b Endpoint) int {
		return cmp.Or(strings.Compare(a.Address, b.Address), strings.Compare(a.ID, b.ID))
	})
	return out
}

// ByFax returns the live endpoint that owns a fax number, in any common UK
// format (the fax bridge routes by the number dialled).
func (d *Directory) ByFax(ctx context.Context, number string) (Endpoint, error) {
	n, err := NormaliseFax(number)
	if err != nil {
		return Endpoint{}, fmt.Errorf("directory: by fax: %v: %w", err, ErrNotFound)
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, id := range d.byFax[n] {
		if e := d.eps[id]; e.Status != StatusRetired {
			return e, nil
		}
	}
	return Endpoint{}, fmt.Errorf("directory: by fax %s: %w", n, ErrNotFound)
}

// Organisation returns the organisation with ODS code ods (case folded).
func (d *Directory) Organisation(ctx context.Context, ods string) (Organisation, error) {
	code := strings.ToUpper(strings.TrimSpace(ods))
	d.mu.RLock()
	defer d.mu.RUnlock()
	o, ok := d.orgs[code]
	if !ok {
		return Organisation{}, fmt.Errorf("directory: organisation %q: %w", clip(ods), ErrNotFound)
	}
	return o, nil
}

// Organisations searches by name for an address book: every word of name
// must start a word of the organisation's name, case-insensitively ("castle
// med" finds "CASTLE MEDICAL CENTRE"); a single word also matches the start
// of an ODS code. "" returns all. Sorted by name, then ODS code.
func (d *Directory) Organisations(ctx context.Context, name string) []Organisation {
	words := searchWords(name)
	code := strings.ToUpper(strings.TrimSpace(name))
	d.mu.RLock()
	var out []Organisation
	for _, o := range d.orgs {
		if len(words) == 0 || nameMatches(o.Name, words) || len(words) == 1 && strings.HasPrefix(o.ODS, code) {
			out = append(out, o)
		}
	}
	d.mu.RUnlock()
	slices.SortFunc(out, func(a, b Organisation) int {
		return cmp.Or(strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)), strings.Compare(a.ODS, b.ODS))
	})
	return out
}

// searchWords splits s into lower-case words for name search; apostrophes
// join ("St. Mary's" → "st", "marys").
func searchWords(s string) []string {
	s = strings.NewReplacer("'", "", "’", "").Replace(s)
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

func nameMatches(name string, query []string) bool {
	words := searchWords(name)
	for _, q := range query {
		if !slices.ContainsFunc(words, func(w string) bool { return strings.HasPrefix(w, q) }) {
			return false
		}
	}
	return true
}

// Check answers "can I send to this address?" for people (the CLI's
// directory check and the API's /v1/directory/check). OK is the RCPT
// decision itself (refusal: status, verification, organisation, and with
// Config.RequireSMIME a usable certificate for a remote endpoint), so the
// two never disagree; the certificates are listed as the relay judges them
// (Config.CertCheck), with warnings a person can act on before they bite.
func (d *Directory) Check(ctx context.Context, addr string) CheckResult {
	r := CheckResult{Address: strings.TrimSpace(addr)}
	a, err := NormaliseAddress(addr)
	if err != nil {
		r.Reasons = append(r.Reasons, "not a valid address: "+err.Error())
		return r
	}
	r.Address = a
	d.mu.RLock()
	res, refused := d.resolveLocked(a)
	if errors.Is(refused, ErrNotFound) {
		d.mu.RUnlock()
		r.Reasons = append(r.Reasons, "no such NHS endpoint in the directory")
		return r
	}
	e := res.Requested
	if !strings.EqualFold(e.Address, a) {
		r.Reasons = append(r.Reasons, "no endpoint for this mailbox; the endpoint for its domain "+e.Address+" takes it")
	}
	if e.Redirect != "" {
		r.Reasons = append(r.Reasons, "redirected by an administrator to "+e.Redirect)
		if to, ok := d.exact(e.Redirect); ok {
			e = to
		}
	}
	r.Endpoint = e
	if o, ok := d.orgs[e.ODS]; ok {
		r.Organisation = &o
	}
	d.mu.RUnlock()

	var nv *NotVerifiedError
	if errors.As(refused, &nv) {
		reason := nv.Reason
		if nv.Successor != "" {
			reason += "; successor: " + nv.Successor
		}
		r.Reasons = append(r.Reasons, reason)
	} else if refused != nil {
		r.Reasons = append(r.Reasons, refused.Error())
	}
	now := d.cfg.Now()
	warnDays := int(d.cfg.WarnBefore / (24 * time.Hour))
	if v := e.Verification.Expires; refused == nil && !v.IsZero() && v.Sub(now) < d.cfg.WarnBefore {
		r.Reasons = append(r.Reasons, fmt.Sprintf("verification expires on %s (%d days); verify again before then", day(v), daysLeft(now, v)))
	}
	verdicts := d.judgeCerts(e, now, true)
	usable := 0
	for _, v := range verdicts {
		r.Certificates = append(r.Certificates, v.info)
		if v.usable() {
			usable++
			if v.info.DaysLeft < warnDays {
				r.Reasons = append(r.Reasons, fmt.Sprintf("S/MIME certificate %s expires on %s (%d days)", v.info.Subject, day(v.info.NotAfter), v.info.DaysLeft))
			}
		}
	}
	switch {
	case refused != nil:
	case e.TLSOnly:
		r.Reasons = append(r.Reasons, "administrator exception: sent without S/MIME, over verified TLS only")
	case usable == 0 && e.Hosted():
		r.Reasons = append(r.Reasons, "hosted here: delivered to its mailbox on this relay, so no S/MIME certificate is needed")
	case usable == 0 && !d.cfg.RequireSMIME:
		r.Reasons = append(r.Reasons, "no valid S/MIME certificate (S/MIME not required by this directory's configuration)")
	}
	r.Path = path(e)
	r.OK = refused == nil // the RCPT decision, certificates included
	return r
}

// resolveLocked is Resolve for a caller holding d.mu.
func (d *Directory) resolveLocked(addr string) (Resolution, error) {
	a, err := NormaliseAddress(addr)
	if err != nil {
		return Resolution{Address: addr}, fmt.Errorf("directory: lookup: %v: %w", err, ErrNotFound)
	}
	r := Resolution{Address: a}
	if r.Requested, err = d.lookup(a); err != nil {
		return r, err
	}
	r.Redirected = r.Requested.Redirect != ""
	r.Target, err = d.follow(r.Requested)
	return r, err
}

// follow applies e's redirect, if any, and the refusal rules to where mail
// for e goes; it returns that endpoint (even with a refusal, if it exists).
// The caller holds d.mu.
func (d *Directory) follow(e Endpoint) (Endpoint, error) {
	if e.Redirect == "" {
		return e, d.refusal(e, e.Address)
	}
	to, ok := d.exact(e.Redirect)
	switch {
	case !ok:
		return Endpoint{}, &NotVerifiedError{Address: e.Address, Status: e.Status,
			Reason: "redirected to " + e.Redirect + ", which is no longer in the directory"}
	case to.Redirect != "":
		// SetRedirect refuses chains; one may still appear if the target was
		// redirected later. Refuse rather than follow: one hop only.
		return to, &NotVerifiedError{Address: e.Address, Status: e.Status,
			Reason: "redirected to " + to.Address + ", which is itself redirected"}
	}
	return to, d.refusal(to, e.Address)
}

func path(e Endpoint) string {
	switch e.NextHop.Kind {
	case HopHosted:
		return "hosted here"
	case HopHost:
		if e.NextHop.TLS == TLSPlainLoopback {
			return "smtp to " + e.NextHop.Host + " (plain, loopback only)"
		}
		return "smtp to " + e.NextHop.Host + " (verified TLS)"
	default:
		dom := e.Address[strings.LastIndexByte(e.Address, '@')+1:]
		return "MX of " + dom + " (verified TLS)"
	}
}

func daysLeft(now, t time.Time) int {
	return int(t.Sub(now).Hours() / 24)
}
