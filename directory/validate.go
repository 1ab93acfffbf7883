package directory

import (
	"crypto/x509"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// maxCertificates bounds an endpoint's stored certificates: a leaf or two
// (renewal overlap) with their chains.
const maxCertificates = 16

// fieldErrors collects field → message; err returns nil if there are none.
type fieldErrors map[string]string

func (f fieldErrors) add(field, format string, args ...any) {
	if _, ok := f[field]; !ok { // keep the first problem with each field
		f[field] = fmt.Sprintf(format, args...)
	}
}

func (f fieldErrors) err() error {
	if len(f) == 0 {
		return nil
	}
	return &ValidationError{Fields: f}
}

// text checks a free-text field: printable, at most max characters.
func (f fieldErrors) text(field, s string, max int, required bool) string {
	s = strings.TrimSpace(s)
	switch {
	case s == "" && required:
		f.add(field, "is required")
	case !utf8.ValidString(s):
		f.add(field, "is not valid UTF-8")
	case utf8.RuneCountInString(s) > max:
		f.add(field, "is longer than %d characters", max)
	case strings.ContainsFunc(s, unicode.IsControl):
		f.add(field, "contains a control character")
	}
	return s
}

// textList checks a list of free-text lines (address lines, contacts): at
// most maxItems of them (called items in the error), each as text checks
// with maxLen; blank lines are dropped.
func (f fieldErrors) textList(field string, in []string, maxItems int, items string, maxLen int) []string {
	if len(in) > maxItems {
		f.add(field, "has more than %d %s", maxItems, items)
	}
	var out []string
	for i, l := range in {
		if l = f.text(fmt.Sprintf("%s[%d]", field, i), l, maxLen, false); l != "" {
			out = append(out, l)
		}
	}
	return out
}

var (
	// UK postcode shape (outward code, space, inward code), BS 7666.
	postcodeRE = regexp.MustCompile(`^([A-Z]{1,2}[0-9][A-Z0-9]?) ?([0-9][A-Z]{2})$`)
	slugRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)
	phoneRE    = regexp.MustCompile(`^\+?[0-9 ()-]{3,30}$`)
	userRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9._@+-]{0,63}$`)
)

// NormaliseOrganisation checks o field by field and returns it normalised
// (ODS codes and postcode upper-cased, status defaulted to active). Its
// error is a *ValidationError naming every bad field. The ODS importer
// calls it per row to reject bad rows with their line numbers.
func NormaliseOrganisation(o Organisation) (Organisation, error) {
	f := fieldErrors{}
	ods, err := normaliseODS(o.ODS)
	if err != nil {
		f.add("ods", "%v", err)
	}
	o.ODS = ods
	o.Name = f.text("name", o.Name, 200, true)
	switch o.Status {
	case "":
		o.Status = OrgActive
	case OrgActive, OrgDormant, OrgProposed, OrgClosed:
	default:
		f.add("status", "must be active, dormant, proposed or closed, not %q", clip(string(o.Status)))
	}
	if !o.ClosedOn.IsZero() {
		o.ClosedOn = o.ClosedOn.UTC()
	}
	if o.Successor != "" {
		s, err := normaliseODS(o.Successor)
		switch {
		case err != nil:
			f.add("successor", "%v", err)
		case s == o.ODS:
			f.add("successor", "an organisation cannot succeed itself")
		}
		o.Successor = s
	}
	o.Address = f.textList("address", o.Address, 10, "lines", 100)
	if pc := strings.ToUpper(strings.Join(strings.Fields(o.Postcode), " ")); pc != "" {
		m := postcodeRE.FindStringSubmatch(pc)
		if m == nil {
			f.add("postcode", "%q is not a UK postcode (like LS1 4AP)", clip(o.Postcode))
		} else {
			pc = m[1] + " " + m[2]
		}
		o.Postcode = pc
	}
	if o.Phone = strings.TrimSpace(o.Phone); o.Phone != "" && !phoneRE.MatchString(o.Phone) {
		f.add("phone", "%q is not a phone number (digits, spaces, + ( ) -)", clip(o.Phone))
	}
	if o.Kind = strings.TrimSpace(o.Kind); o.Kind != "" && !slugRE.MatchString(o.Kind) {
		f.add("kind", "%q must be lower-case letters, digits and hyphens (like gp-practice)", clip(o.Kind))
	}
	switch o.Source {
	case "", SourceODS, SourceAdmin:
	default:
		f.add("source", "must be ods or admin, not %q", clip(o.Source))
	}
	return o, f.err()
}

// checkEndpoint validates and normalises the fields an administrator sets.
// Status, verification and redirect are the caller's business. The caller
// holds d.mu (read) for the organisation and uniqueness checks.
func (d *Directory) checkEndpoint(e Endpoint) (Endpoint, error) {
	f := fieldErrors{}
	addr, err := NormaliseAddress(e.Address)
	if err != nil {
		f.add("address", "%v", err)
	}
	e.Address = addr
	ods, err := normaliseODS(e.ODS)
	if err != nil {
		f.add("ods", "%v", err)
	} else if o, ok := d.orgs[ods]; !ok {
		f.add("ods", "no organisation with ODS code %s; add or import it first", ods)
	} else if closedish(o) {
		f.add("ods", "%s: %s", ods, orgClosedReason(o))
	}
	e.ODS = ods
	if e.Purpose == "" {
		e.Purpose = PurposeGeneral
	}
	if !slices.Contains(Purposes(), e.Purpose) {
		f.add("purpose", "must be one of %s, not %q", strings.Join(Purposes(), ", "), clip(e.Purpose))
	}
	e.NextHop = checkNextHop(f, e.NextHop)
	// The TLS-only exception sends clinical mail without S/MIME; an
	// administrator allows it only with evidence, and only where mail
	// leaves the relay (hosted mail never crosses a network).
	if e.TLSOnly {
		e.TLSOnlyEvidence = f.text("tls_only_evidence", e.TLSOnlyEvidence, 1000, true)
		if e.NextHop.Kind == HopHosted {
			f.add("tls_only", "a hosted endpoint's mail is delivered here and never crosses the network; TLS-only has no meaning for it")
		}
	} else if strings.TrimSpace(e.TLSOnlyEvidence) != "" {
		f.add("tls_only_evidence", "is given only with tls_only (the evidence for that exception)")
	}
	if len(e.Certificates) > maxCertificates {
		f.add("certificates", "has more than %d certificates", maxCertificates)
	}
	for i, der := range e.Certificates {
		if _, err := x509.ParseCertificate(der); err != nil {
			f.add(fmt.Sprintf("certificates[%d]", i), "not a DER X.509 certificate: %v", err)
		}
	}
	var faxes []string
	for i, n := range e.FaxNumbers {
		fax, err := NormaliseFax(n)
		if err != nil {
			f.add(fmt.Sprintf("fax_numbers[%d]", i), "%v", err)
			continue
		}
		if !slices.Contains(faxes, fax) {
			faxes = append(faxes, fax)
		}
	}
	e.FaxNumbers = faxes
	e.Contacts = f.textList("contacts", e.Contacts, 20, "entries", 200)
	// Addresses and fax numbers belong to one live endpoint at a time.
	for _, o := range d.eps {
		if o.ID == e.ID || o.Status == StatusRetired {
			continue
		}
		if addr != "" && strings.EqualFold(o.Address, addr) {
			f.add("address", "already used by endpoint %s; retire that one first", o.ID)
		}
		for _, fax := range faxes {
			if slices.Contains(o.FaxNumbers, fax) {
				f.add("fax_numbers", "%s is already owned by endpoint %s (%s)", fax, o.ID, o.Address)
			}
		}
	}
	return e, f.err()
}

func checkNextHop(f fieldErrors, h NextHop) NextHop {
	if h.Kind == "" {
		h.Kind = HopMX
	}
	if h.TLS == "" {
		h.TLS = TLSVerified
	}
	switch h.Kind {
	case HopHosted, HopMX:
		if h.Host != "" {
			f.add("next_hop.host", "only a next hop of kind host names a host")
		}
	case HopHost:
		host, port, err := net.SplitHostPort(h.Host)
		if err != nil {
			f.add("next_hop.host", "must be host:port (like mx.nhs.example:25): %v", err)
			break
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			f.add("next_hop.host", "port %q must be 1 to 65535", port)
		}
		if net.ParseIP(host) == nil {
			if _, err := normaliseDomain(host); err != nil && host != "localhost" {
				f.add("next_hop.host", "host %q: %v", clip(host), err)
			}
		}
	default:
		f.add("next_hop.kind", "must be hosted, host or mx, not %q", clip(string(h.Kind)))
	}
	switch h.TLS {
	case TLSVerified:
	case TLSPlainLoopback:
		host, _, _ := net.SplitHostPort(h.Host)
		ip := net.ParseIP(host)
		if h.Kind != HopHost || !(host == "localhost" || ip != nil && ip.IsLoopback()) {
			f.add("next_hop.tls", "plain-loopback is allowed only for a host next hop on a loopback address")
		}
	default:
		f.add("next_hop.tls", "must be verified or plain-loopback, not %q", clip(string(h.TLS)))
	}
	return h
}

// receiptsValues are the accepted values of Account.Receipts ("" is
// on-request).
var receiptsValues = []string{"always", "on-request", "never"}

// checkAccount validates and normalises an account. prev is the account as
// stored (nil for a new one): addresses it already owned are not checked
// against the directory again, so that disabling an account whose endpoint
// was retired since still works. With no ODS code the organisation is the
// one whose endpoint the first address is. The caller holds wmu.
func (d *Directory) checkAccount(a Account, prev *Account) (Account, error) {
	f := fieldErrors{}
	a.Username = strings.ToLower(strings.TrimSpace(a.Username))
	if !userRE.MatchString(a.Username) {
		f.add("username", "must be 1 to 64 letters, digits and . _ @ + - (starting with a letter or digit)")
	}
	if _, err := bcrypt.Cost([]byte(a.PasswordHash)); err != nil {
		f.add("password_hash", "is not a bcrypt hash (use HashPassword): %v", err)
	}
	odsOK := true
	if a.ODS = strings.TrimSpace(a.ODS); a.ODS != "" {
		ods, err := normaliseODS(a.ODS)
		if err != nil {
			f.add("ods", "%v", err)
			odsOK = false
		} else if _, ok := d.orgs[ods]; !ok {
			f.add("ods", "no organisation with ODS code %s", ods)
			odsOK = false
		}
		a.ODS = ods
	}
	if a.Receipts != "" && !slices.Contains(receiptsValues, a.Receipts) {
		f.add("receipts", "must be always, on-request or never, not %q", clip(a.Receipts))
	}
	a.Note = f.text("note", a.Note, 200, false)
	a.DisabledReason = f.text("disabled_reason", a.DisabledReason, 200, false)
	if !a.Disabled && a.DisabledReason != "" {
		f.add("disabled_reason", "is given only for a disabled account")
	}
	if len(a.Addresses) == 0 {
		f.add("addresses", "an account needs at least one address to send from")
	}
	if len(a.Addresses) > maxAccountAddresses {
		f.add("addresses", "has more than %d addresses", maxAccountAddresses)
	}
	var addrs []string
	for i, s := range a.Addresses {
		field := fmt.Sprintf("addresses[%d]", i)
		addr, err := NormaliseAddress(s)
		switch {
		case err != nil:
			f.add(field, "%v", err)
		case !strings.Contains(addr, "@"):
			f.add(field, "%q is a domain; an account sends from mailboxes", addr)
		case !slices.ContainsFunc(addrs, func(x string) bool { return strings.EqualFold(x, addr) }):
			addrs = append(addrs, addr)
			if odsOK && (prev == nil || prev.ODS != a.ODS || !prev.Owns(addr)) {
				a.ODS = d.checkOwnedAddress(f, field, addr, a.ODS)
			}
		}
	}
	a.Addresses = addrs
	return a, f.err()
}

// maxAccountAddresses bounds the addresses one account owns.
const maxAccountAddresses = 100

// checkOwnedAddress checks that addr is an endpoint (a mailbox, or in a
// domain endpoint) of organisation ods, and returns ods, or the endpoint's
// organisation when ods is "". The caller holds wmu.
func (d *Directory) checkOwnedAddress(f fieldErrors, field, addr, ods string) string {
	e, err := d.lookup(addr)
	switch {
	case err != nil:
		f.add(field, "%s is not an endpoint in the directory; add it first (nhsrelay directory add -ods CODE %s)", addr, addr)
	case e.Status == StatusRetired:
		f.add(field, "%s is endpoint %s, which is retired", addr, e.ID)
	case ods == "":
		return e.ODS
	case e.ODS != ods:
		name := ""
		if o, ok := d.orgs[e.ODS]; ok {
			name = " (" + o.Name + ")"
		}
		f.add(field, "%s is an endpoint of %s%s, not of the account's organisation %s", addr, e.ODS, name, ods)
	}
	return ods
}
