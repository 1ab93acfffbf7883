package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"nhsrelay/audit"
	"nhsrelay/directory"
)

// fhir adapts a handler to the FHIR API: errors become OperationOutcome
// resources, all answers are application/fhir+json.
func (s *server) fhir(h func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		ae := toAPIError(err, "")
		code := "invalid"
		switch ae.status {
		case http.StatusNotFound:
			code = "not-found"
		case http.StatusMethodNotAllowed, http.StatusNotAcceptable:
			code = "not-supported"
		case http.StatusInternalServerError:
			code = "exception"
			cause := err
			if ae.cause != nil {
				cause = ae.cause
			}
			s.log.Error("directory fhir api", "path", r.URL.Path, "actor", audit.ActorFrom(r.Context()), "err", cause)
		}
		writeFHIR(w, ae.status, OperationOutcome{ResourceType: "OperationOutcome",
			Issue: []fhirIssue{{Severity: "error", Code: code, Diagnostics: ae.msg}}})
	}
}

func writeFHIR(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", fhirJSON)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) // a write error means the client went away
}

// fhirQuery checks a FHIR search's parameters. FHIR R4 §3.1.1.5: by default
// a server ignores parameters it does not support (and leaves them out of
// the self link); a client that sends "Prefer: handling=strict" gets an
// error instead. A supported parameter given twice is refused either way,
// since this server would otherwise match on one of them silently.
func fhirQuery(r *http.Request, supported ...string) (url.Values, error) {
	if strings.Contains(r.Header.Get("Prefer"), "handling=strict") {
		if err := checkQuery(r, supported...); err != nil {
			return nil, err
		}
	}
	used := url.Values{}
	q := r.URL.Query()
	for _, k := range supported {
		switch vs := q[k]; len(vs) {
		case 0:
		case 1:
			used.Set(k, vs[0])
		default:
			return nil, fieldError(k, "given more than once")
		}
	}
	if err := checkFormat(used.Get("_format")); err != nil {
		return nil, err
	}
	return used, nil
}

// checkFormat accepts _format only for JSON (FHIR R4 §3.1.0.1.10).
func checkFormat(format string) error {
	switch format {
	case "", "json", "application/json", "application/fhir+json":
		return nil
	}
	return errorf(http.StatusNotAcceptable, "_format: only JSON (application/fhir+json) is served")
}

// validID checks a FHIR logical id: [A-Za-z0-9\-\.]{1,64} (R4 §2.24.0.1 id).
func validID(id string) error {
	ok := len(id) >= 1 && len(id) <= 64
	for i := 0; i < len(id) && ok; i++ {
		c := id[i]
		ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.'
	}
	if !ok {
		return errorf(http.StatusBadRequest, "%q is not a FHIR id (1 to 64 letters, digits, '-' and '.')", id)
	}
	return nil
}

// splitToken splits a FHIR token search value "system|code" (R4 §3.1.1.4.3).
// hasSystem is false for a bare "code".
func splitToken(v string) (system, code string, hasSystem bool) {
	system, code, hasSystem = strings.Cut(v, "|")
	if !hasSystem {
		return "", v, false
	}
	return system, code, true
}

// orgParam reads the organization search parameter: a reference
// ("Organization/A81001", or an absolute URL ending so), an ODS token
// ("https://fhir.nhs.uk/Id/ods-organization-code|A81001"), or a bare code.
func orgParam(v string) (string, error) {
	if sys, code, ok := splitToken(v); ok {
		if sys != ODSSystem && sys != "" {
			return "", fieldError("organization", "identifier system must be "+ODSSystem)
		}
		v = code
	} else if i := strings.LastIndex(v, "Organization/"); i >= 0 {
		v = v[i+len("Organization/"):]
	}
	if err := validID(v); err != nil {
		return "", fieldError("organization", "not an ODS code or Organization reference")
	}
	return strings.ToUpper(v), nil
}

// addressParam reads the address search parameter: a mailto: URI as
// Endpoint.address holds, or a plain address.
func addressParam(v string) (string, error) {
	if len(v) >= 7 && strings.EqualFold(v[:7], "mailto:") {
		u, err := url.PathUnescape(v[7:])
		if err != nil {
			return "", fieldError("address", "bad percent-encoding in the mailto: URI")
		}
		v = u
	}
	v = strings.TrimPrefix(v, "*@") // a whole-domain endpoint, see mailtoURI
	if v == "" || strings.ContainsAny(v, " \t\r\n<>") {
		return "", fieldError("address", "not a mail address or domain")
	}
	return v, nil
}

// baseURL is the absolute URL of this server as the client reached it, for
// Bundle.entry.fullUrl (which must be absolute, R4 §2.36.4.1).
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/fhir/"
}

func (s *server) fhirSearchEndpoints(w http.ResponseWriter, r *http.Request) error {
	q, err := fhirQuery(r, "identifier", "organization", "address", "status", "_count", "_offset", "_format")
	if err != nil {
		return err
	}
	var (
		f    directory.Filter
		id   string
		none bool // the parameters can match nothing
	)
	if v := q.Get("identifier"); v != "" {
		switch sys, code, _ := splitToken(v); sys {
		case "", EndpointIDSystem:
			id = code
		case ODSSystem: // as NHS England's SDS FHIR API allows
			f.ODS = strings.ToUpper(code)
		default:
			none = true // an identifier system we do not issue matches nothing
		}
	}
	if v := q.Get("organization"); v != "" {
		code, err := orgParam(v)
		if err != nil {
			return err
		}
		if f.ODS != "" && f.ODS != code {
			none = true
		}
		f.ODS = code
	}
	if v := q.Get("address"); v != "" {
		addr, err := addressParam(v)
		if err != nil {
			return err
		}
		f.Address = addr
	}
	statuses, err := statusParam(q.Get("status"))
	if err != nil {
		return err
	}
	pg, err := pageParams(q)
	if err != nil {
		return err
	}
	var matched []directory.Endpoint
	if !none {
		// Filtered in place: a page of a national directory must not copy
		// every endpoint twice.
		matched = s.pages.endpoints(s.d, r.Context(), f, statuses == nil)
		if id != "" || statuses != nil {
			matched = slices.DeleteFunc(slices.Clone(matched), func(e directory.Endpoint) bool {
				return id != "" && e.ID != id || statuses != nil && !statuses[s.fhirStatus(e)]
			})
		}
	}
	base := baseURL(r)
	b := Bundle{ResourceType: "Bundle", Type: "searchset", Total: len(matched),
		Link: pg.links(base+"Endpoint", q, len(matched))}
	orgs := map[string]directory.Organisation{}
	for _, e := range pageOf(pg, matched) {
		o, seen := orgs[e.ODS]
		if !seen {
			o, _ = s.d.Organisation(r.Context(), e.ODS) // unknown: no display name
			orgs[e.ODS] = o
		}
		b.Entry = append(b.Entry, bundleEntry{FullURL: base + "Endpoint/" + e.ID,
			Resource: toFHIREndpoint(e, o, s.fhirStatus(e), s.nextHop), Search: bundleSearch{Mode: "match"}})
	}
	writeFHIR(w, http.StatusOK, b)
	return nil
}

func (s *server) fhirReadEndpoint(w http.ResponseWriter, r *http.Request) error {
	if _, err := fhirQuery(r, "_format"); err != nil {
		return err
	}
	id := r.PathValue("id")
	if err := validID(id); err != nil {
		return err
	}
	e, err := s.d.Endpoint(r.Context(), id)
	if err != nil {
		return toAPIError(err, "Endpoint/"+id+" is not in this directory")
	}
	o, err := s.d.Organisation(r.Context(), e.ODS)
	if err != nil && !errors.Is(err, directory.ErrNotFound) {
		return err
	}
	writeFHIR(w, http.StatusOK, toFHIREndpoint(e, o, s.fhirStatus(e), s.nextHop))
	return nil
}

func (s *server) fhirSearchOrganisations(w http.ResponseWriter, r *http.Request) error {
	q, err := fhirQuery(r, "identifier", "name", "_count", "_offset", "_format")
	if err != nil {
		return err
	}
	pg, err := pageParams(q)
	if err != nil {
		return err
	}
	code, none := "", false
	if v := q.Get("identifier"); v != "" {
		sys, c, _ := splitToken(v)
		if sys != "" && sys != ODSSystem {
			none = true
		}
		code = strings.ToUpper(c)
	}
	var matched []directory.Organisation
	if !none {
		for _, o := range s.d.Organisations(r.Context(), q.Get("name")) {
			if code == "" || o.ODS == code {
				matched = append(matched, o)
			}
		}
	}
	base := baseURL(r)
	b := Bundle{ResourceType: "Bundle", Type: "searchset", Total: len(matched),
		Link: pg.links(base+"Organization", q, len(matched))}
	for _, o := range pageOf(pg, matched) {
		eps := s.d.Endpoints(r.Context(), directory.Filter{ODS: o.ODS})
		b.Entry = append(b.Entry, bundleEntry{FullURL: base + "Organization/" + o.ODS,
			Resource: toFHIROrganization(o, eps), Search: bundleSearch{Mode: "match"}})
	}
	writeFHIR(w, http.StatusOK, b)
	return nil
}

func (s *server) fhirReadOrganisation(w http.ResponseWriter, r *http.Request) error {
	if _, err := fhirQuery(r, "_format"); err != nil {
		return err
	}
	code := r.PathValue("ods")
	if err := validID(code); err != nil {
		return err
	}
	code = strings.ToUpper(code)
	o, err := s.d.Organisation(r.Context(), code)
	if err != nil {
		return toAPIError(err, "Organization/"+code+" is not in this directory")
	}
	eps := s.d.Endpoints(r.Context(), directory.Filter{ODS: code})
	writeFHIR(w, http.StatusOK, toFHIROrganization(o, eps))
	return nil
}

// fhirNotFound answers everything else under /fhir/: a write to a resource
// we serve is 405 (this API is read-only), anything else 404.
func (s *server) fhirNotFound(w http.ResponseWriter, r *http.Request) error {
	if allow := s.allowed(r); len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		return errorf(http.StatusMethodNotAllowed, "this FHIR API is read-only: %s is not allowed on %s", r.Method, r.URL.Path)
	}
	return errorf(http.StatusNotFound, "no FHIR resource at %s: this server serves Endpoint and Organization", r.URL.Path)
}
