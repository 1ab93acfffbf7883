package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"nhsrelay/directory"
)

// Paging of FHIR searches (R4 §3.1.1.5.7 _count, §3.1.1.3.5 paging links).
// A search returns at most _count entries (default and maximum below) with
// Bundle.total counting every match and "next"/"previous" links that carry
// _offset, our paging cursor: the links are opaque to a client, which
// follows them as given.
const (
	defaultFHIRCount = 100
	maxFHIRCount     = 1000
)

type paging struct {
	count, offset int
}

// pageParams reads _count and _offset.
func pageParams(q url.Values) (paging, error) {
	p := paging{count: defaultFHIRCount}
	if v := q.Get("_count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return p, fieldError("_count", "must be a whole number from 0 to "+strconv.Itoa(maxFHIRCount))
		}
		p.count = min(n, maxFHIRCount) // R4: a server may return fewer than asked
	}
	if v := q.Get("_offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return p, fieldError("_offset", "must be a whole number, 0 or more (follow the Bundle's next link)")
		}
		p.offset = n
	}
	return p, nil
}

// pageOf is the part of items on page p.
func pageOf[T any](p paging, items []T) []T {
	if p.offset >= len(items) {
		return nil
	}
	return items[p.offset:min(len(items), p.offset+p.count)]
}

// links are the Bundle's self, first, previous and next links for a search
// of path with the parameters q that matched total resources.
func (p paging) links(path string, q url.Values, total int) []bundleLink {
	at := func(rel string, offset int) bundleLink {
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		v.Set("_count", strconv.Itoa(p.count))
		v.Del("_offset")
		if offset > 0 {
			v.Set("_offset", strconv.Itoa(offset))
		}
		return bundleLink{Relation: rel, URL: path + "?" + v.Encode()}
	}
	out := []bundleLink{at("self", p.offset), at("first", 0)}
	if p.offset > 0 && p.count > 0 {
		out = append(out, at("previous", max(0, p.offset-p.count)))
	}
	if p.count > 0 && p.offset+p.count < total {
		out = append(out, at("next", p.offset+p.count))
	}
	return out
}

// fhirStatuses are the R4 Endpoint.status codes (R4 valueset
// endpoint-status); a search may ask for any of them, and for several
// separated by commas (R4 §3.1.1.4.3: a comma is OR). This server gives
// active, suspended and off; the others match nothing.
var fhirStatuses = []string{"active", "suspended", "error", "off", "entered-in-error", "test"}

// statusParam reads the status search parameter; nil means any status.
func statusParam(v string) (map[string]bool, error) {
	if v == "" {
		return nil, nil
	}
	want := map[string]bool{}
	for _, c := range strings.Split(v, ",") {
		c = strings.TrimSpace(c)
		if _, code, ok := strings.Cut(c, "|"); ok { // a token may name its system
			c = code
		}
		ok := false
		for _, s := range fhirStatuses {
			ok = ok || s == c
		}
		if !ok {
			return nil, fieldError("status", "must be an R4 Endpoint status: "+strings.Join(fhirStatuses, ", ")+" (comma-separated for several)")
		}
		want[c] = true
	}
	return want, nil
}

// FHIRAuth lets a request through to next only if check accepts its bearer
// token; otherwise it answers 401 with an OperationOutcome (issue code
// "login", R4 valueset issue-type), as every FHIR error here is, and the
// scheme expected (RFC 6750 §3).
func FHIRAuth(check func(token string) bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		presented, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !check(strings.TrimSpace(presented)) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="nhsrelay fhir"`)
			writeFHIR(w, http.StatusUnauthorized, OperationOutcome{ResourceType: "OperationOutcome",
				Issue: []fhirIssue{{Severity: "error", Code: "login",
					Diagnostics: "missing or wrong bearer token: this FHIR API needs the relay's FHIR read token or its admin token"}}})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// pageCache keeps the last endpoint search's sorted list while the
// directory is at the same revision, so that reading every page of a
// national directory (a federation peer's sync: 50 pages of 50,000) lists
// and sorts it once, not once a page. Only searches without a status
// filter are kept: status depends on the clock too.
type pageCache struct {
	mu   sync.Mutex
	rev  uint64
	f    directory.Filter
	list []directory.Endpoint // read-only once stored
}

// endpoints is d.Endpoints(ctx, f), from the cache when it may be.
// The result must not be modified.
func (c *pageCache) endpoints(d *directory.Directory, ctx context.Context, f directory.Filter, cacheable bool) []directory.Endpoint {
	if !cacheable {
		return d.Endpoints(ctx, f)
	}
	rev := d.Revision()
	c.mu.Lock()
	if c.list != nil && c.rev == rev && c.f == f {
		list := c.list
		c.mu.Unlock()
		return list
	}
	c.mu.Unlock()
	list := d.Endpoints(ctx, f)
	if d.Revision() == rev { // nothing written while listing
		c.mu.Lock()
		c.rev, c.f, c.list = rev, f, list
		c.mu.Unlock()
	}
	return list
}
