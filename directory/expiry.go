package directory

import (
	"cmp"
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"
)

// CheckExpiry looks at every verified endpoint. One whose verification or
// last usable S/MIME certificate (certNotice) expires within
// Config.WarnBefore gets a warning; one already past it is suspended, with
// the reason, in one atomic write. Certificates the relay would refuse for
// another reason (Config.CertCheck) are warned about, not suspended.
// cmd runs it daily, exports the counts as metrics and mails Lines to the
// administrators. An endpoint with TLSOnly set is not judged by its
// certificates.
func (d *Directory) CheckExpiry(ctx context.Context) (ExpiryReport, error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	now := d.cfg.Now()
	rep := ExpiryReport{At: now}
	var b Batch
	var suspended []Endpoint
	for _, e := range d.eps {
		if e.Status != StatusVerified {
			continue
		}
		rep.Checked++
		var notices []ExpiryNotice
		if exp := e.Verification.Expires; !exp.IsZero() {
			notices = append(notices, d.notice(e, ExpiryVerification, exp, now))
		}
		if !e.TLSOnly && len(e.Certificates) > 0 {
			notices = append(notices, d.certNotice(e, now))
		}
		var expired []ExpiryNotice
		for _, n := range notices {
			switch {
			case n.Kind == ExpiryCertificateProblem:
				rep.Warnings = append(rep.Warnings, n)
			case n.DaysLeft < 0 || !now.Before(n.Expires):
				expired = append(expired, n)
			case n.Expires.Sub(now) <= d.cfg.WarnBefore:
				rep.Warnings = append(rep.Warnings, n)
			}
		}
		if len(expired) > 0 {
			var why []string
			for _, n := range expired {
				why = append(why, n.Text)
			}
			e.Status, e.StatusReason, e.SuspendedBy, e.SuspendedFrom = StatusSuspended, strings.Join(why, "; "), SuspendedByExpiry, ""
			e.StatusAt = now // FHIR: the period ends at the suspension
			b.Endpoints = append(b.Endpoints, e)
			suspended = append(suspended, e)
			rep.Suspended = append(rep.Suspended, expired...)
		}
	}
	byDate := func(a, b ExpiryNotice) int {
		return cmp.Or(a.Expires.Compare(b.Expires), strings.Compare(a.Address, b.Address), strings.Compare(string(a.Kind), string(b.Kind)))
	}
	slices.SortFunc(rep.Warnings, byDate)
	slices.SortFunc(rep.Suspended, byDate)
	if err := d.commit(ctx, "expiry suspensions", b); err != nil {
		d.record(ctx, "directory.expiry", "", outcomeFailed, err.Error())
		return rep, err
	}
	d.recordSuspensions(ctx, suspended)
	for _, n := range rep.Warnings {
		d.log.Warn("directory: expiry due", "endpoint", n.Address, "kind", string(n.Kind), "expires", day(n.Expires), "days_left", n.DaysLeft)
	}
	for _, n := range rep.Suspended {
		rep.Lines = append(rep.Lines, fmt.Sprintf("SUSPENDED %s (%s): %s", n.Address, n.ODS, n.Text))
	}
	for _, n := range rep.Warnings {
		rep.Lines = append(rep.Lines, fmt.Sprintf("WARNING   %s (%s): %s", n.Address, n.ODS, n.Text))
	}
	d.log.Info("directory: expiry check", "checked", rep.Checked, "warnings", len(rep.Warnings), "suspended", len(suspended))
	if len(suspended) > 0 || len(rep.Warnings) > 0 {
		d.record(ctx, "directory.expiry", "", outcomeOK, fmt.Sprintf("%d checked, %d warnings, %d endpoints suspended", rep.Checked, len(rep.Warnings), len(suspended)))
	}
	return rep, nil
}

func (d *Directory) notice(e Endpoint, kind ExpiryKind, exp, now time.Time) ExpiryNotice {
	n := ExpiryNotice{EndpointID: e.ID, Address: e.Address, ODS: e.ODS, Kind: kind, Expires: exp, DaysLeft: daysLeft(now, exp)}
	if !now.Before(exp) {
		n.DaysLeft = min(n.DaysLeft, -1)
	}
	past := !now.Before(exp)
	switch {
	case kind == ExpiryVerification && past:
		n.Text = "verification expired on " + day(exp) + "; verify again"
	case kind == ExpiryVerification:
		n.Text = fmt.Sprintf("re-verification due by %s (%d days)", day(exp), n.DaysLeft)
	case past:
		n.Text = "S/MIME certificate expired on " + day(exp) + "; a new certificate is needed"
	default:
		n.Text = fmt.Sprintf("S/MIME certificate expires on %s (%d days)", day(exp), n.DaysLeft)
	}
	return n
}

// certNotice says when e's S/MIME runs out, judged as the relay judges it
// (judgeCerts): the latest expiry of the leaf certificates that name e and
// that Config.CertCheck accepts. If none is usable: expired when every
// naming leaf is past its date (CheckExpiry suspends), else a
// certificate problem with the reason of the longest-lasting one (a
// warning). CA certificates and certificates for others never count.
func (d *Directory) certNotice(e Endpoint, now time.Time) ExpiryNotice {
	var usable, newest *x509.Certificate
	var newestErr error
	orgOnly := false
	for _, v := range d.judgeCerts(e, now, false) {
		if v.cert != nil && isOrgCert(v.cert, e) {
			orgOnly = true
		}
		switch {
		case v.usable():
			if usable == nil || v.cert.NotAfter.After(usable.NotAfter) {
				usable = v.cert
			}
		case v.names:
			if newest == nil || v.cert.NotAfter.After(newest.NotAfter) {
				newest, newestErr = v.cert, v.err
			}
		}
	}
	switch {
	case usable != nil:
		return d.notice(e, ExpiryCertificate, usable.NotAfter, now)
	case newest != nil && now.After(newest.NotAfter):
		return d.notice(e, ExpiryCertificate, newest.NotAfter, now)
	}
	n := ExpiryNotice{EndpointID: e.ID, Address: e.Address, ODS: e.ODS, Kind: ExpiryCertificateProblem}
	if newest == nil {
		n.Text = "no S/MIME certificate names " + e.Address + " (RFC 8550 §3); mail to it is held"
		if orgOnly {
			n.Text = "the S/MIME certificate " + orgCertProblem(e) + "; mail to it is held"
		}
		return n
	}
	n.Expires, n.DaysLeft = newest.NotAfter, daysLeft(now, newest.NotAfter)
	n.Text = "S/MIME certificate refused: " + newestErr.Error() + "; mail to it is held"
	return n
}
