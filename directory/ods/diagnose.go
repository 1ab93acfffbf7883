package ods

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrEmpty is returned by Parse for a file with no rows at all.
var ErrEmpty = errors.New("ods: the file is empty: no rows to import (epraccur.csv has one row per GP practice)")

// NotEpraccurError is returned by Parse when the first rows show the file
// is not an epraccur.csv at all (another ODS file, a zip, a spreadsheet,
// garbage): it stops there rather than rejecting every row one by one.
// Reason says what the file looks like, for a person to act on.
type NotEpraccurError struct {
	Reason string
}

func (e *NotEpraccurError) Error() string { return "ods: not an epraccur.csv file: " + e.Reason }

// sniffRows is how many rows Parse reads before deciding that a file
// with no good row is not an epraccur.csv; minSniffRows is how many a
// shorter file needs for that judgement (one or two bad rows are just bad
// rows, reported one by one).
const (
	sniffRows    = 20
	minSniffRows = 3
)

// practiceCode is the shape of a code in epraccur: a letter and five
// digits (practices "A81001", prescribing cost centres "Y00001").
var practiceCode = regexp.MustCompile(`^[A-Z][0-9]{5}$`)

// sniff collects what the first rows look like.
type sniff struct {
	rows         int
	good         int         // rows that parsed as organisations
	practiceLike int         // good rows with a practice code or a prescribing setting
	columns      map[int]int // column count → rows
	firstReason  string
	binary       bool
	zip          bool
}

func (s *sniff) line(n int, raw []byte, fields []string, parsedOK bool, reason string) {
	if s.columns == nil {
		s.columns = map[int]int{}
	}
	if n == 1 && bytes.HasPrefix(raw, []byte("PK\x03\x04")) {
		s.zip = true
	}
	if bytes.IndexByte(raw, 0) >= 0 {
		s.binary = true
	}
	s.rows++
	if fields != nil {
		s.columns[len(fields)]++
	}
	if parsedOK {
		s.good++
		if len(fields) == Columns && (practiceCode.MatchString(strings.ToUpper(strings.TrimSpace(fields[colCode]))) ||
			strings.TrimSpace(fields[colPrescribing]) != "") {
			s.practiceLike++
		}
	} else if s.firstReason == "" {
		s.firstReason = fmt.Sprintf("line %d: %s", n, reason)
	}
}

// verdict is nil if the rows seen may be an epraccur.csv.
func (s *sniff) verdict() error {
	if s.zip {
		return &NotEpraccurError{"it is a zip archive; ODS publishes epraccur.zip: unzip it and import epraccur.csv"}
	}
	if s.rows < minSniffRows {
		return nil
	}
	switch {
	case s.zip:
		return &NotEpraccurError{"it is a zip archive; ODS publishes epraccur.zip: unzip it and import epraccur.csv"}
	case s.binary:
		return &NotEpraccurError{"it holds binary data (NUL bytes), not CSV text"}
	case s.good > 0 && s.practiceLike == 0 && s.good == s.rows:
		return &NotEpraccurError{fmt.Sprintf("none of the first %d rows is a GP practice: no code is a practice code (a letter and five digits) "+
			"and column 26 (prescribing setting) is empty in every row; this looks like another ODS file in the same 27-column layout "+
			"(etrust.csv, ecare.csv, ...)", s.rows)}
	case s.good > 0:
		return nil
	}
	most, count := 0, 0
	for cols, n := range s.columns {
		if n > count || n == count && cols < most {
			most, count = cols, n
		}
	}
	switch {
	case count == s.rows && most == 5:
		return &NotEpraccurError{"every row has 5 columns, as in the ODS successor file succ.csv: import it with -successors"}
	case count == s.rows && most != Columns:
		return &NotEpraccurError{fmt.Sprintf("every row has %d columns; an epraccur.csv row has %d", most, Columns)}
	}
	return &NotEpraccurError{fmt.Sprintf("none of the first %d rows is an epraccur row (first: %s); stopped there", s.rows, s.firstReason)}
}
