package notices

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"time"
	_ "time/tzdata" // Europe/London must load on a host without tzdata
	"unicode"
	"unicode/utf8"
)

// DefaultTimeZone is the time zone of an appointment that names none.
const DefaultTimeZone = "Europe/London"

// Request is the JSON body of POST /v1/notices.
type Request struct {
	Reference    string             `json:"reference"`
	Organisation string             `json:"organisation"`
	Kind         string             `json:"kind"`
	Patient      PatientRequest     `json:"patient"`
	Appointment  AppointmentRequest `json:"appointment"`
}

// PatientRequest is who the notice is for.
type PatientRequest struct {
	Name      string         `json:"name"`
	Email     string         `json:"email"`
	NHSNumber string         `json:"nhs_number"`
	Address   *PostalAddress `json:"address"`
}

// AppointmentRequest is the appointment; Start and End are RFC 3339 times
// or local times ("2027-03-28T09:30:00") in TimeZone.
type AppointmentRequest struct {
	Start        string `json:"start"`
	End          string `json:"end"`
	TimeZone     string `json:"time_zone"`
	Clinic       string `json:"clinic"`
	Location     string `json:"location"`
	Department   string `json:"department"`
	Instructions string `json:"instructions"`
	ContactPhone string `json:"contact_phone"`
	VideoLink    string `json:"video_link"`
}

// FieldError is one bad field and why, in words the sending system's
// developer can act on.
type FieldError struct {
	Field   string `json:"field"`
	Problem string `json:"problem"`
}

// ValidationError lists every bad field of a request; nothing of it was
// stored.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Problem
	}
	return "notices: invalid notice: " + strings.Join(parts, "; ")
}

func (e *ValidationError) add(field, format string, args ...any) {
	e.Fields = append(e.Fields, FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
}

// Limits on what a notice may hold.
const (
	MaxBodyBytes   = 64 << 10 // a larger POST body is refused (413)
	maxText        = 200
	maxLongText    = 2000
	maxAddressLine = 80
	maxLines       = 6
	maxAhead       = 2 * 366 * 24 * time.Hour // appointments at most ~2 years ahead
	maxLength      = 24 * time.Hour
)

var (
	referenceRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$`)
	odsRE       = regexp.MustCompile(`^[A-Z0-9]{3,10}$`)
	// UK postcode, as written on an envelope (BS 7666 shape, GIR 0AA).
	postcodeRE = regexp.MustCompile(`^(GIR 0AA|[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][A-Z]{2})$`)
	phoneRE    = regexp.MustCompile(`^\+?[0-9 ()-]{6,30}$`)
)

// DecodeRequest reads one JSON request of at most MaxBodyBytes. Unknown
// fields, trailing data and wrong types are refused with the field named.
func DecodeRequest(r io.Reader) (Request, error) {
	var req Request
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Request{}, jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Request{}, &ValidationError{Fields: []FieldError{{Field: "(body)", Problem: "more than one JSON value"}}}
	}
	return req, nil
}

// jsonError words a decoding error as a field problem.
func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	ve := &ValidationError{}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return err // the caller answers 413
	case errors.As(err, &te):
		ve.add(te.Field, "must be a JSON %s", te.Type.Kind())
	case errors.As(err, &se):
		ve.add("(body)", "not valid JSON at byte %d", se.Offset)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		ve.add("(body)", "empty or truncated JSON")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		ve.add(strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), "unknown field")
	default:
		ve.add("(body)", "not a notice: %s", oneLine(err.Error()))
	}
	return ve
}

// Validate checks every field and returns the notice's content, or a
// *ValidationError naming every bad field. now is the time the request
// arrived (appointments in the past are refused, except to cancel).
func (req Request) Validate(now time.Time) (Kind, Appointment, error) {
	ve := &ValidationError{}
	if !referenceRE.MatchString(req.Reference) {
		ve.add("reference", "required: 1 to 100 letters, digits and . _ : / -, starting with a letter or digit")
	}
	if !odsRE.MatchString(req.Organisation) {
		ve.add("organisation", "required: an ODS code, 3 to 10 capital letters and digits")
	}
	kind := Kind(req.Kind)
	if kind != KindNew && kind != KindChanged && kind != KindCancelled {
		ve.add("kind", "must be new, changed or cancelled")
	}
	p := req.Patient
	a := Appointment{
		PatientName: clean(p.Name), Email: strings.TrimSpace(p.Email), Address: p.Address,
		Clinic: clean(req.Appointment.Clinic), Location: clean(req.Appointment.Location),
		Department: clean(req.Appointment.Department), Instructions: strings.TrimSpace(req.Appointment.Instructions),
		ContactPhone: clean(req.Appointment.ContactPhone), VideoLink: strings.TrimSpace(req.Appointment.VideoLink),
	}
	text(ve, "patient.name", a.PatientName, maxText, true)
	if a.Email != "" {
		if why := emailProblem(a.Email); why != "" {
			ve.add("patient.email", "%s", why)
		}
	}
	if a.Address != nil {
		checkAddress(ve, a.Address)
	} else if a.Email == "" {
		ve.add("patient.address", "required when there is no patient.email: the notice goes by letter")
	}
	if p.NHSNumber != "" {
		if !ValidNHSNumber(p.NHSNumber) {
			ve.add("patient.nhs_number", "not a valid NHS number: 10 digits whose last is the modulus 11 check digit")
		} else {
			a.NHSNumber = normaliseNHSNumber(p.NHSNumber)
		}
	}
	ar := req.Appointment
	a.TimeZone = ar.TimeZone
	if a.TimeZone == "" {
		a.TimeZone = DefaultTimeZone
	}
	loc, err := time.LoadLocation(a.TimeZone)
	if err != nil || a.TimeZone == "Local" {
		ve.add("appointment.time_zone", "not a known IANA time zone (for example Europe/London)")
		loc = nil
	}
	if loc != nil {
		a.Start = parseTime(ve, "appointment.start", ar.Start, loc)
		a.End = parseTime(ve, "appointment.end", ar.End, loc)
		switch {
		case a.Start.IsZero() || a.End.IsZero():
		case !a.End.After(a.Start):
			ve.add("appointment.end", "must be after appointment.start")
		case a.End.Sub(a.Start) > maxLength:
			ve.add("appointment.end", "an appointment may last at most 24 hours")
		}
		if !a.Start.IsZero() && kind != KindCancelled && a.Start.Before(now) {
			ve.add("appointment.start", "is in the past")
		}
		if !a.Start.IsZero() && a.Start.After(now.Add(maxAhead)) {
			ve.add("appointment.start", "is more than two years ahead")
		}
	}
	text(ve, "appointment.location", a.Location, maxText, true)
	text(ve, "appointment.clinic", a.Clinic, maxText, false)
	text(ve, "appointment.department", a.Department, maxText, false)
	if len(a.Instructions) > maxLongText || !utf8.ValidString(a.Instructions) || hasControl(a.Instructions, true) {
		ve.add("appointment.instructions", "at most %d characters of text (line breaks allowed, no other control characters)", maxLongText)
	}
	if a.ContactPhone != "" && !phoneRE.MatchString(a.ContactPhone) {
		ve.add("appointment.contact_phone", "a telephone number: digits, spaces, ( ) - and a leading +, 6 to 30 characters")
	}
	if a.VideoLink != "" {
		if u, err := url.Parse(a.VideoLink); err != nil || u.Scheme != "https" || u.Host == "" || len(a.VideoLink) > 500 || u.User != nil {
			ve.add("appointment.video_link", "an https:// link of at most 500 characters, without a user name or password")
		}
	}
	if len(ve.Fields) > 0 {
		return "", Appointment{}, ve
	}
	a.Start, a.End = a.Start.In(loc), a.End.In(loc)
	return kind, a, nil
}

func clean(s string) string { return strings.Join(strings.Fields(s), " ") }

// text checks a one-line text field.
func text(ve *ValidationError, field, s string, max int, required bool) {
	switch {
	case s == "" && required:
		ve.add(field, "required")
	case len(s) > max:
		ve.add(field, "at most %d characters", max)
	case !utf8.ValidString(s) || hasControl(s, false):
		ve.add(field, "must be text without control characters")
	}
}

func hasControl(s string, newlines bool) bool {
	for _, c := range s {
		if newlines && (c == '\n' || c == '\r' || c == '\t') {
			continue
		}
		if unicode.IsControl(c) || c == '\u2028' || c == '\u2029' {
			return true
		}
	}
	return false
}

// emailProblem says what is wrong with a patient's address, or "".
// RFC 5321 §4.5.3.1: at most 64 octets of local part, 254 in all.
func emailProblem(s string) string {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return "not an email address (just the address, like name@example.org)"
	}
	local, domain, _ := strings.Cut(a.Address, "@")
	switch {
	case len(s) > 254 || len(local) > 64:
		return "too long: at most 254 characters, 64 before the @"
	case strings.HasPrefix(local, `"`) || strings.ContainsAny(s, " \t<>()[]\\,;"):
		return "quoted or unusual addresses are not accepted"
	case !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.Contains(domain, ".."):
		return "the domain after @ must be a full internet domain, like example.org"
	}
	for _, c := range domain {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return "the domain after @ may hold only letters, digits, - and ."
		}
	}
	return ""
}

func checkAddress(ve *ValidationError, a *PostalAddress) {
	for i := range a.Lines {
		a.Lines[i] = clean(a.Lines[i])
	}
	a.Postcode = strings.ToUpper(clean(a.Postcode))
	if len(a.Lines) == 0 || len(a.Lines) > maxLines {
		ve.add("patient.address.lines", "1 to %d lines are needed", maxLines)
	}
	for i, l := range a.Lines {
		text(ve, fmt.Sprintf("patient.address.lines[%d]", i), l, maxAddressLine, true)
	}
	if !postcodeRE.MatchString(a.Postcode) {
		ve.add("patient.address.postcode", "a UK postcode with its space, like LS1 4AP")
	}
}

// parseTime reads an RFC 3339 time, or a local time in loc. A local time
// that does not exist (inside a spring-forward gap) is refused; one that
// happens twice (autumn) is taken at its first occurrence.
func parseTime(ve *ValidationError, field, s string, loc *time.Location) time.Time {
	if s == "" {
		ve.add(field, "required: a time like 2027-03-28T09:30:00 (in appointment.time_zone) or with an offset")
		return time.Time{}
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			y, mo, d := t.Date()
			if t.Hour() != hourOf(s) || t.Day() != d || t.Month() != mo || t.Year() != y {
				break
			}
			return t
		}
	}
	if t, err := time.ParseInLocation("2006-01-02T15:04:05", s, loc); err == nil && t.Hour() != hourOf(s) {
		ve.add(field, "does not exist in %s (the clocks go forward then)", loc)
		return time.Time{}
	}
	ve.add(field, "not a time like 2027-03-28T09:30:00 or 2027-03-28T09:30:00+01:00")
	return time.Time{}
}

// hourOf is the hour written in a "YYYY-MM-DDTHH..." string, or -1.
func hourOf(s string) int {
	if len(s) < 13 || s[10] != 'T' {
		return -1
	}
	h := int(s[11]-'0')*10 + int(s[12]-'0')
	return h
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// canonical is the content a digest is taken of: kind and appointment.
func canonical(k Kind, a Appointment) []byte {
	var b bytes.Buffer
	json.NewEncoder(&b).Encode(struct {
		K Kind
		A Appointment
	}{k, a})
	return b.Bytes()
}
