package ods

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"nhsrelay/directory"
)

// Columns is the number of columns in every epraccur.csv row.
const Columns = 27

// 0-based column indexes of the fields we use.
const (
	colCode        = 0
	colName        = 1
	colAddr1       = 4 // address lines are columns 5–9
	colPostcode    = 9
	colOpenDate    = 10
	colCloseDate   = 11
	colStatus      = 12
	colPhone       = 17
	colPrescribing = 25
)

// maxFieldBytes bounds one field after unquoting; ODS fields are at most
// 100 characters (names) and usually far less.
const maxFieldBytes = 256

// Rejected is a row that was not imported, and why, for a person to fix.
type Rejected struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

func (r Rejected) String() string { return fmt.Sprintf("line %d: %s", r.Line, r.Reason) }

// Parse reads an epraccur.csv file. Each good row becomes an Organisation
// (Source "ods"); each bad row is listed in rejected with its line number and
// a reason, and never stops the rows after it. Blank lines are skipped. A
// second row for an ODS code already seen is rejected.
//
// A file that is not an epraccur.csv is told apart early: a file with no
// rows gives ErrEmpty, and when the first rows (sniffRows) hold no good
// one, or only rows of another ODS file, Parse stops with a
// *NotEpraccurError saying what the file looks like instead of rejecting
// every row of it. Otherwise err is only a failure to read r.
func Parse(r io.Reader) (orgs []directory.Organisation, rejected []Rejected, err error) {
	lr := newLineReader(r)
	seen := make(map[string]int)
	var fields []string
	var sn sniff
	judged := false
	for {
		if !judged && sn.rows == sniffRows {
			judged = true
			if err := sn.verdict(); err != nil {
				return nil, nil, err
			}
		}
		if err := lr.next(); err != nil {
			if !errors.Is(err, io.EOF) {
				return orgs, rejected, err
			}
			if sn.rows == 0 {
				return nil, nil, ErrEmpty
			}
			if !judged {
				if err := sn.verdict(); err != nil {
					return nil, nil, err
				}
			}
			return orgs, rejected, nil
		}
		if lr.err != nil {
			rejected = append(rejected, Rejected{lr.n, lr.err.Error()})
			sn.line(lr.n, lr.line, nil, false, lr.err.Error())
			continue
		}
		if len(strings.TrimSpace(string(lr.line))) == 0 {
			continue
		}
		fields, err = parseRecord(string(lr.line), fields)
		if err != nil {
			rejected = append(rejected, Rejected{lr.n, err.Error()})
			sn.line(lr.n, lr.line, nil, false, err.Error())
			continue
		}
		raw := fields
		if !judged {
			raw = slices.Clone(fields) // parseRow cleans fields in place
		}
		o, err := parseRow(fields)
		if err == nil {
			// The directory's own checks, row by row, so that a row it would
			// refuse is rejected here with its line rather than failing the
			// whole import.
			o, err = directory.NormaliseOrganisation(o)
			err = columnsOf(err)
		}
		if !judged {
			reason := ""
			if err != nil {
				reason = err.Error()
			}
			sn.line(lr.n, lr.line, raw, err == nil, reason)
		}
		if err != nil {
			rejected = append(rejected, Rejected{lr.n, err.Error()})
			continue
		}
		if first, dup := seen[o.ODS]; dup {
			rejected = append(rejected, Rejected{lr.n, fmt.Sprintf("ODS code %s already given on line %d", o.ODS, first)})
			continue
		}
		seen[o.ODS] = lr.n
		orgs = append(orgs, o)
	}
}

// columnNames name the columns in rejection reasons (1-based in the text).
var columnNames = [Columns]string{
	"organisation code", "name", "national grouping", "high level health geography",
	"address line 1", "address line 2", "address line 3", "address line 4", "address line 5",
	"postcode", "open date", "close date", "status", "organisation sub-type", "commissioner",
	"join provider/purchaser date", "left provider/purchaser date", "contact telephone",
	"null", "null", "null", "amended record indicator", "null", "provider/purchaser",
	"null", "prescribing setting", "null",
}

// fieldError names a column in the words the ODS documentation uses.
func fieldError(col int, format string, args ...any) error {
	return fmt.Errorf("column %d (%s): %s", col+1, columnNames[col], fmt.Sprintf(format, args...))
}

// fieldColumns maps directory.Organisation JSON fields to 0-based columns.
var fieldColumns = map[string]int{"ods": colCode, "name": colName, "status": colStatus,
	"postcode": colPostcode, "phone": colPhone, "kind": colPrescribing}

// columnsOf rewrites a *directory.ValidationError in terms of columns.
func columnsOf(err error) error {
	var ve *directory.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	var parts []string
	for field, msg := range ve.Fields {
		if col, ok := fieldColumns[field]; ok {
			parts = append(parts, fieldError(col, "%s", msg).Error())
		} else if strings.HasPrefix(field, "address") {
			parts = append(parts, "address lines (columns 5–9): "+msg)
		} else {
			parts = append(parts, field+": "+msg)
		}
	}
	slices.Sort(parts)
	return errors.New(strings.Join(parts, "; "))
}

// parseRow turns the 27 fields of one row into an Organisation.
func parseRow(f []string) (directory.Organisation, error) {
	var o directory.Organisation
	if len(f) != Columns {
		return o, fmt.Errorf("%d columns, want %d", len(f), Columns)
	}
	for i := range f {
		v, err := cleanText(f[i])
		if err != nil {
			return o, fieldError(i, "%v", err)
		}
		f[i] = v
	}
	code := strings.ToUpper(f[colCode])
	if err := checkODS(code); err != nil {
		return o, fieldError(colCode, "%v", err)
	}
	if f[colName] == "" {
		return o, fieldError(colName, "empty")
	}
	status, err := parseStatus(f[colStatus])
	if err != nil {
		return o, fieldError(colStatus, "%v", err)
	}
	opened, err := parseDate(f[colOpenDate])
	if err != nil {
		return o, fieldError(colOpenDate, "%v", err)
	}
	closed, err := parseDate(f[colCloseDate])
	if err != nil {
		return o, fieldError(colCloseDate, "%v", err)
	}
	if status == directory.OrgClosed && closed.IsZero() {
		return o, fieldError(colCloseDate, "empty, but status is C (closed)")
	}
	if !closed.IsZero() && !opened.IsZero() && closed.Before(opened) {
		return o, fieldError(colCloseDate, "%s is before the open date %s", f[colCloseDate], f[colOpenDate])
	}
	kind, err := kindOf(f[colPrescribing])
	if err != nil {
		return o, fieldError(colPrescribing, "%v", err)
	}
	o = directory.Organisation{
		ODS:      code,
		Name:     f[colName],
		Status:   status,
		ClosedOn: closed,
		Postcode: strings.ToUpper(f[colPostcode]),
		Phone:    f[colPhone],
		Kind:     kind,
		Source:   "ods",
	}
	for _, line := range f[colAddr1 : colAddr1+5] {
		if line != "" {
			o.Address = append(o.Address, line)
		}
	}
	return o, nil
}

// checkODS accepts an ODS organisation code: 3 to 10 letters and digits
// (trusts "RXX", practices "A81001", sites "RXX01").
func checkODS(code string) error {
	if code == "" {
		return errors.New("empty")
	}
	if len(code) < 3 || len(code) > 10 {
		return fmt.Errorf("%q is not an ODS code (3 to 10 letters and digits)", code)
	}
	for _, c := range code {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return fmt.Errorf("%q is not an ODS code (3 to 10 letters and digits)", code)
		}
	}
	return nil
}

func parseStatus(s string) (directory.OrgStatus, error) {
	switch s {
	case "A":
		return directory.OrgActive, nil
	case "C":
		return directory.OrgClosed, nil
	case "D":
		return directory.OrgDormant, nil
	case "P":
		return directory.OrgProposed, nil
	case "":
		return "", errors.New("empty (want A, C, D or P)")
	}
	return "", fmt.Errorf("unknown status %q (want A, C, D or P)", s)
}

// parseDate reads an ODS date, YYYYMMDD, as midnight UTC; "" is the zero time.
func parseDate(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	bad := len(s) != 8
	for i := 0; i < len(s) && !bad; i++ {
		bad = s[i] < '0' || s[i] > '9'
	}
	if bad {
		return time.Time{}, fmt.Errorf("%q is not a date in YYYYMMDD form", s)
	}
	t, err := time.Parse("20060102", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a real date", s)
	}
	return t, nil
}

// prescribingKinds maps the ODS prescribing setting (column 26) to Kind.
var prescribingKinds = map[int]string{
	0:  "other",
	1:  "walk-in-centre",
	2:  "out-of-hours",
	3:  "walk-in-centre-out-of-hours",
	4:  "gp-practice",
	8:  "public-health-service",
	9:  "community-health-service",
	10: "hospital-service",
	11: "optometry-service",
	12: "urgent-emergency-care",
	13: "hospice",
	14: "care-home",
	15: "border-force",
	16: "young-offender-institution",
	17: "secure-training-centre",
	18: "secure-childrens-home",
	19: "immigration-removal-centre",
	20: "court",
	21: "police-custody",
	22: "sexual-assault-referral-centre",
	24: "other-justice-estate",
	25: "prison",
}

// kindOf maps a prescribing setting to a Kind. A number ODS adds later is
// kept as "prescribing-setting-N" rather than rejecting the practice.
func kindOf(s string) (string, error) {
	if s == "" {
		return "other", nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 999 {
		return "", fmt.Errorf("%q is not a prescribing setting number", s)
	}
	if k, ok := prescribingKinds[n]; ok {
		return k, nil
	}
	return "prescribing-setting-" + strconv.Itoa(n), nil
}

// cleanText trims a field and folds runs of white space to one space. It
// refuses control characters and over-long fields.
//
// QUIRK: a field that is not valid UTF-8 is read as ISO 8859-1, which older
// ODS extracts and spreadsheet exports use; better a Welsh name with the
// right letters than a rejected practice.
func cleanText(s string) (string, error) {
	if len(s) > maxFieldBytes {
		return "", fmt.Errorf("longer than %d bytes", maxFieldBytes)
	}
	if !utf8.ValidString(s) {
		rs := make([]rune, len(s))
		for i := 0; i < len(s); i++ {
			rs[i] = rune(s[i])
		}
		s = string(rs)
	}
	simple := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c == 0x7f || c >= 0x80 || (c == ' ' && (i == 0 || i == len(s)-1 || s[i+1] == ' ')) {
			simple = false
			break
		}
	}
	if simple { // the common case: nothing to change, no allocation
		return s, nil
	}
	var b strings.Builder
	space := false
	for _, r := range s {
		switch {
		case r == ' ' || r == '\t' || r == '\u00a0':
			space = b.Len() > 0
			continue
		case unicode.IsControl(r):
			return "", fmt.Errorf("control character %U", r)
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	return b.String(), nil
}
