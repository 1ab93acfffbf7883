package api

import (
	"encoding/csv"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"nhsrelay/directory"
	"nhsrelay/directory/ods"
)

// importODS imports an epraccur.csv body. The answer is the ods.Report; a
// strict import with bad rows is 422 with the report in the error body.
func (s *server) importODS(w http.ResponseWriter, r *http.Request) error {
	strict, err := strictParam(r)
	if err != nil {
		return err
	}
	body := http.MaxBytesReader(w, r.Body, s.maxCSV)
	rep, err := ods.Import(r.Context(), s.d, body, strict)
	var se *ods.StrictError
	switch {
	case errors.As(err, &se):
		ae := toAPIError(err, "")
		ae.report = &rep
		return ae
	case err != nil:
		return err
	}
	s.changed(r, "ods import", "rows", strconv.Itoa(rep.Rows), "added", len(rep.Added), "updated", len(rep.Updated),
		"closed", len(rep.Closed), "rejected", len(rep.Rejected))
	writeJSON(w, http.StatusOK, rep)
	return nil
}

// importSuccessors imports an ODS successor file (succ.csv) body.
func (s *server) importSuccessors(w http.ResponseWriter, r *http.Request) error {
	strict, err := strictParam(r)
	if err != nil {
		return err
	}
	rep, err := ods.ImportSuccessors(r.Context(), s.d, http.MaxBytesReader(w, r.Body, s.maxCSV), strict)
	var se *ods.StrictError
	switch {
	case errors.As(err, &se):
		ae := toAPIError(err, "")
		ae.successors = &rep
		return ae
	case err != nil:
		return err
	}
	s.changed(r, "ods successor import", "rows", strconv.Itoa(rep.Rows), "updated", len(rep.Updated),
		"unknown", len(rep.Unknown), "rejected", len(rep.Rejected))
	writeJSON(w, http.StatusOK, rep)
	return nil
}

// strictParam reads ?strict= (the only parameter the imports take).
func strictParam(r *http.Request) (bool, error) {
	if err := checkQuery(r, "strict"); err != nil {
		return false, err
	}
	switch r.URL.Query().Get("strict") {
	case "", "0", "false", "no":
		return false, nil
	case "1", "true", "yes":
		return true, nil
	}
	return false, fieldError("strict", "must be 1 or 0")
}

// check answers "can I send to this address?".
func (s *server) check(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r, "address"); err != nil {
		return err
	}
	addr := strings.TrimSpace(r.URL.Query().Get("address"))
	if addr == "" {
		return fieldError("address", "required: the address to check")
	}
	writeJSON(w, http.StatusOK, s.d.Check(r.Context(), addr))
	return nil
}

// Export is the JSON export: everything an operator needs to rebuild the
// directory's organisations and endpoints, and its sender accounts without
// their password hashes (a restored account needs a new password).
type Export struct {
	Organisations []directory.Organisation `json:"organisations"`
	Endpoints     []directory.Endpoint     `json:"endpoints"`
	Accounts      []Account                `json:"accounts"`
}

// EndpointCSVHeader is the header row of the endpoints CSV export.
var EndpointCSVHeader = []string{"id", "address", "ods", "organisation", "purpose", "status",
	"status_reason", "next_hop", "next_hop_host", "tls", "tls_only", "tls_only_evidence", "fax_numbers", "contacts",
	"redirect", "verified_by", "verified_at", "verification_method", "verification_expires",
	"certificates"}

// AccountCSVHeader is the header row of the accounts CSV export.
var AccountCSVHeader = []string{"username", "ods", "addresses", "disabled", "disabled_reason", "receipts",
	"note", "created", "password_set"}

// OrganisationCSVHeader is the header row of the organisations CSV export.
var OrganisationCSVHeader = []string{"ods", "name", "status", "closed_on", "successor", "address",
	"postcode", "phone", "kind", "source", "imported_at"}

func (s *server) export(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r, "format", "what"); err != nil {
		return err
	}
	q := r.URL.Query()
	ctx := r.Context()
	format, what := q.Get("format"), q.Get("what")
	if format == "" {
		format = "json"
	}
	if what == "" {
		what = "endpoints"
	}
	if what != "endpoints" && what != "organisations" && what != "accounts" {
		return fieldError("what", "must be endpoints, organisations or accounts")
	}
	orgs := s.d.Organisations(ctx, "")
	eps := s.d.Endpoints(ctx, directory.Filter{})
	switch format {
	case "json":
		if orgs == nil {
			orgs = []directory.Organisation{}
		}
		if eps == nil {
			eps = []directory.Endpoint{}
		}
		writeJSON(w, http.StatusOK, Export{Organisations: orgs, Endpoints: eps, Accounts: accountViews(s.d.Accounts(ctx))})
		return nil
	case "csv":
	default:
		return fieldError("format", "must be csv or json")
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="nhsrelay-`+what+`.csv"`)
	cw := csv.NewWriter(w)
	switch what {
	case "accounts":
		cw.Write(AccountCSVHeader)
		for _, a := range s.d.Accounts(ctx) {
			cw.Write(cells(a.Username, a.ODS, strings.Join(a.Addresses, " "), boolCell(a.Disabled), a.DisabledReason,
				a.Receipts, a.Note, stamp(a.Created), stamp(a.PasswordSet)))
		}
	case "organisations":
		cw.Write(OrganisationCSVHeader)
		for _, o := range orgs {
			cw.Write(cells(o.ODS, o.Name, string(o.Status), date(o.ClosedOn), o.Successor,
				strings.Join(o.Address, "; "), o.Postcode, o.Phone, o.Kind, o.Source, stamp(o.ImportedAt)))
		}
	default:
		names := make(map[string]string, len(orgs))
		for _, o := range orgs {
			names[o.ODS] = o.Name
		}
		cw.Write(EndpointCSVHeader)
		for _, e := range eps {
			v := e.Verification
			cw.Write(cells(e.ID, e.Address, e.ODS, names[e.ODS], e.Purpose, string(e.Status),
				e.StatusReason, string(e.NextHop.Kind), e.NextHop.Host, string(e.NextHop.TLS),
				boolCell(e.TLSOnly), e.TLSOnlyEvidence, strings.Join(e.FaxNumbers, " "), strings.Join(e.Contacts, "; "),
				e.Redirect, v.By, stamp(v.At), v.Method, stamp(v.Expires), strconv.Itoa(len(e.Certificates))))
		}
	}
	cw.Flush()
	return nil // a write error means the client went away
}

// cells neutralises spreadsheet formulas: a cell that a spreadsheet would
// evaluate ("=", "@", or "+"/"-" not starting a number) gets a leading "'".
// E.164 numbers ("+44...") are left as they are.
func cells(vs ...string) []string {
	for i, v := range vs {
		if v == "" {
			continue
		}
		c := v[0]
		formula := c == '=' || c == '@' || c == '\t' || c == '\r'
		if (c == '+' || c == '-') && (len(v) == 1 || v[1] < '0' || v[1] > '9') {
			formula = true
		}
		if formula {
			vs[i] = "'" + v
		}
	}
	return vs
}

func date(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.DateOnly)
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func boolCell(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
