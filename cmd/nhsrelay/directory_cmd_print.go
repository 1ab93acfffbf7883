package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"nhsrelay/directory"
	"nhsrelay/directory/ods"
)

// Printing for `nhsrelay directory`, for people. Tables are aligned like
// postqueue's; single records are "key: value" lines like postconf's.

func dirDay(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.DateOnly)
}

func dirDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func hopText(h directory.NextHop) string {
	s := string(h.Kind)
	if h.Kind == directory.HopHost {
		s = h.Host
	}
	if h.TLS == directory.TLSPlainLoopback {
		s += " (plain)"
	}
	return dirDash(s)
}

// writeTable prints items as the list commands do: "no NOUNs" when there
// are none, else the header, one row of tab-separated cells per item
// (row writes it, newline included) and "-- N NOUN(s)".
func writeTable[T any](w io.Writer, noun, header string, items []T, row func(tw io.Writer, item T)) {
	if len(items) == 0 {
		fmt.Fprintf(w, "no %ss\n", noun)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, it := range items {
		row(tw, it)
	}
	tw.Flush()
	fmt.Fprintf(w, "-- %d %s(s)\n", len(items), noun)
}

func writeEndpoints(w io.Writer, eps []directory.Endpoint) {
	writeTable(w, "endpoint", "ID\tADDRESS\tODS\tSTATUS\tPURPOSE\tNEXT HOP\tVERIFIED UNTIL", eps, func(tw io.Writer, e directory.Endpoint) {
		until := "-"
		if e.Status == directory.StatusVerified {
			until = dirDay(e.Verification.Expires)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Address, e.ODS, e.Status, dirDash(e.Purpose), hopText(e.NextHop), until)
	})
}

func writeOrganisations(w io.Writer, orgs []directory.Organisation) {
	writeTable(w, "organisation", "ODS\tSTATUS\tKIND\tPOSTCODE\tNAME", orgs, func(tw io.Writer, o directory.Organisation) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.ODS, orgStatus(o), dirDash(o.Kind), dirDash(o.Postcode), o.Name)
	})
}

func orgStatus(o directory.Organisation) string {
	if !o.ClosedOn.IsZero() && (o.Status == directory.OrgClosed || o.Status == directory.OrgDormant) {
		return string(o.Status) + " " + o.ClosedOn.UTC().Format(time.DateOnly)
	}
	return string(o.Status)
}

// dirKV prints "key: value" lines with the values aligned.
type dirKV struct{ tw *tabwriter.Writer }

func newDirKV(w io.Writer) dirKV { return dirKV{tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)} }

func (k dirKV) line(key, format string, args ...any) {
	fmt.Fprintf(k.tw, "%s:\t%s\n", key, fmt.Sprintf(format, args...))
}

func writeOrganisation(w io.Writer, o directory.Organisation) {
	k := newDirKV(w)
	k.line("ods", "%s", o.ODS)
	k.line("name", "%s", o.Name)
	k.line("status", "%s", orgStatus(o))
	if o.Successor != "" {
		k.line("successor", "%s", o.Successor)
	}
	k.line("kind", "%s", dirDash(o.Kind))
	addr := append(append([]string{}, o.Address...), o.Postcode)
	k.line("address", "%s", dirDash(strings.Trim(strings.Join(addr, ", "), ", ")))
	k.line("phone", "%s", dirDash(o.Phone))
	src := dirDash(o.Source)
	if !o.ImportedAt.IsZero() {
		src += ", imported " + o.ImportedAt.Local().Format(time.DateTime)
	}
	k.line("source", "%s", src)
	k.tw.Flush()
}

func writeEndpoint(w io.Writer, e directory.Endpoint, o directory.Organisation) {
	k := newDirKV(w)
	k.line("id", "%s", e.ID)
	k.line("address", "%s", e.Address)
	org := e.ODS
	if o.Name != "" {
		org += " " + o.Name + " (" + orgStatus(o) + ")"
	}
	k.line("organisation", "%s", org)
	k.line("purpose", "%s", dirDash(e.Purpose))
	status := string(e.Status)
	if e.StatusReason != "" {
		status += ": " + e.StatusReason
	}
	k.line("status", "%s", status)
	tls := string(e.NextHop.TLS)
	if tls == "" {
		tls = string(directory.TLSVerified)
	}
	k.line("next hop", "%s, TLS %s", hopText(e.NextHop), tls)
	if e.TLSOnly {
		k.line("s/mime", "none: administrator exception, verified TLS only (%s)", dirDash(e.TLSOnlyEvidence))
	} else {
		k.line("s/mime", "%d certificate(s)", len(e.Certificates))
	}
	k.line("fax numbers", "%s", dirDash(strings.Join(e.FaxNumbers, ", ")))
	k.line("contacts", "%s", dirDash(strings.Join(e.Contacts, ", ")))
	if e.Redirect != "" {
		k.line("redirect", "%s", e.Redirect)
	}
	if e.Peer != "" {
		k.line("from peer", "%s (kept in sync by federation; change it at the peer)", e.Peer)
	}
	if v := e.Verification; !v.At.IsZero() {
		how := v.Method
		if v.Evidence != "" {
			how += ": " + v.Evidence
		}
		k.line("verified", "%s by %s (%s)", v.At.Local().Format(time.DateTime), v.By, how)
		k.line("verify again by", "%s", dirDay(v.Expires))
	}
	k.tw.Flush()
}

func writeImportReport(w io.Writer, rep ods.Report, verbose bool) {
	fmt.Fprintln(w, rep.Summary())
	if verbose {
		for _, l := range []struct {
			name  string
			codes []string
		}{{"added", rep.Added}, {"updated", rep.Updated}, {"closed", rep.Closed}, {"reopened", rep.Reopened}} {
			if len(l.codes) > 0 {
				fmt.Fprintf(w, "%s: %s\n", l.name, strings.Join(l.codes, " "))
			}
		}
	}
	for _, a := range rep.Suspended {
		fmt.Fprintf(w, "suspended: %s\n", a)
	}
	for _, a := range rep.Restored {
		fmt.Fprintf(w, "restored (organisation reopened): %s\n", a)
	}
	for _, r := range rep.Rejected {
		fmt.Fprintf(w, "rejected: %s\n", r)
	}
}

func writeCheck(w io.Writer, r directory.CheckResult) {
	verdict := "OK: clinical mail would be accepted and sent"
	if !r.OK {
		verdict = "NO: clinical mail would not be sent"
	}
	fmt.Fprintf(w, "%s: %s\n", r.Address, verdict)
	k := newDirKV(w)
	if r.Endpoint.ID != "" {
		org := r.Endpoint.ODS
		if r.Organisation != nil {
			org += " " + r.Organisation.Name
		}
		k.line("endpoint", "%s %s (%s), %s", r.Endpoint.ID, r.Endpoint.Address, org, r.Endpoint.Status)
	}
	if r.Path != "" {
		k.line("path", "%s", r.Path)
	}
	for _, c := range r.Certificates {
		state := fmt.Sprintf("valid until %s (%d days)", dirDay(c.NotAfter), c.DaysLeft)
		switch {
		case c.Problem != "":
			state = c.Problem
		case c.CA:
			state = fmt.Sprintf("issuing CA, until %s", dirDay(c.NotAfter))
		}
		k.line("certificate", "%s: %s", c.Subject, state)
	}
	for _, reason := range r.Reasons {
		k.line("reason", "%s", reason)
	}
	k.tw.Flush()
}
