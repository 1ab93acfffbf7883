package ods

import (
	"context"
	"fmt"
	"io"
	"strings"

	"nhsrelay/directory"
)

// Report says what an import did. The ODS code lists come from
// directory.ImportResult; Rejected lists the rows not imported.
type Report struct {
	Rows int `json:"rows"` // non-blank lines read
	directory.ImportResult
	Rejected []Rejected `json:"rejected"`
	// Written is false when nothing was written: a strict import with
	// rejected rows, or a failure to write.
	Written bool `json:"written"`
}

// Summary is one line for a person: "12 rows: 3 added, ...".
func (r Report) Summary() string {
	s := fmt.Sprintf("%d rows: %d added, %d updated, %d closed, %d unchanged, %d rejected",
		r.Rows, len(r.Added), len(r.Updated), len(r.Closed), len(r.Unchanged), len(r.Rejected))
	if n := len(r.Reopened); n > 0 {
		s += fmt.Sprintf("; %d reopened", n)
	}
	if n := len(r.Suspended); n > 0 {
		s += fmt.Sprintf("; %d endpoints suspended", n)
	}
	if n := len(r.Restored); n > 0 {
		s += fmt.Sprintf("; %d endpoints restored", n)
	}
	if !r.Written {
		s += "; nothing written"
	}
	return s
}

// StrictError is returned by a strict import that found bad rows; nothing
// was written.
type StrictError struct {
	Rejected []Rejected
}

// maxReasonsInError bounds how many rejected rows StrictError's text names.
const maxReasonsInError = 5

func (e *StrictError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ods: strict import refused: %d bad rows, nothing written", len(e.Rejected))
	for i, r := range e.Rejected {
		if i == maxReasonsInError {
			fmt.Fprintf(&b, "; and %d more", len(e.Rejected)-i)
			break
		}
		b.WriteString("; ")
		b.WriteString(r.String())
	}
	return b.String()
}

// Import parses an epraccur.csv file from r and writes its good rows to d in
// one batch (ImportOrganisations is atomic and idempotent: the same file
// twice changes nothing the second time). Rejected rows are reported and do
// not stop the others, unless strict is set: then any rejected row fails
// the import with a *StrictError and nothing is written.
func Import(ctx context.Context, d *directory.Directory, r io.Reader, strict bool) (Report, error) {
	orgs, rejected, err := Parse(r)
	rep := Report{Rows: len(orgs) + len(rejected), Rejected: rejected}
	if rep.Rejected == nil {
		rep.Rejected = []Rejected{}
	}
	if err != nil {
		return rep, fmt.Errorf("ods: import: %w", err)
	}
	if strict && len(rejected) > 0 {
		return rep, &StrictError{Rejected: rejected}
	}
	res, err := d.ImportOrganisations(ctx, orgs)
	if err != nil {
		return rep, fmt.Errorf("ods: import: %w", err)
	}
	rep.ImportResult, rep.Written = res, true
	for _, l := range []*[]string{&rep.Added, &rep.Updated, &rep.Closed, &rep.Unchanged} {
		if *l == nil {
			*l = []string{}
		}
	}
	return rep, nil
}
