package ods

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"nhsrelay/directory"
)

// Succession is one row of the ODS successor file (succ.csv): no header,
// quoted columns 1 predecessor organisation code, 2 successor organisation
// code, 3 succession reason, 4 effective date (YYYYMMDD), 5 indicator.
// Only the first two are required.
type Succession struct {
	Line        int       `json:"line"`
	Predecessor string    `json:"predecessor"`
	Successor   string    `json:"successor"`
	Reason      string    `json:"reason,omitempty"`
	Effective   time.Time `json:"effective,omitzero"`
}

// ParseSuccessors reads a succ.csv file. Bad rows are rejected with their
// line and reason and never stop the others. A predecessor listed twice
// (ODS lists one per successor when a practice splits) keeps its first
// successor; the later rows are rejected, naming the first line.
func ParseSuccessors(r io.Reader) ([]Succession, []Rejected, error) {
	lr := newLineReader(r)
	var (
		out      []Succession
		rejected []Rejected
		fields   []string
		seen     = map[string]int{}
	)
	for {
		if err := lr.next(); err != nil {
			if errors.Is(err, io.EOF) {
				return out, rejected, nil
			}
			return out, rejected, err
		}
		if lr.err != nil {
			rejected = append(rejected, Rejected{lr.n, lr.err.Error()})
			continue
		}
		if len(strings.TrimSpace(string(lr.line))) == 0 {
			continue
		}
		var err error
		fields, err = parseRecord(string(lr.line), fields)
		var s Succession
		if err == nil {
			s, err = parseSuccession(fields)
		}
		if err == nil {
			if first, dup := seen[s.Predecessor]; dup {
				err = fmt.Errorf("%s already has a successor on line %d; only the first is kept", s.Predecessor, first)
			}
		}
		if err != nil {
			rejected = append(rejected, Rejected{lr.n, err.Error()})
			continue
		}
		s.Line = lr.n
		seen[s.Predecessor] = lr.n
		out = append(out, s)
	}
}

func parseSuccession(f []string) (Succession, error) {
	var s Succession
	if len(f) < 2 || len(f) > 10 {
		return s, fmt.Errorf("%d columns, want 5 (at least predecessor and successor)", len(f))
	}
	for i := range f {
		v, err := cleanText(f[i])
		if err != nil {
			return s, fmt.Errorf("column %d: %v", i+1, err)
		}
		f[i] = v
	}
	s.Predecessor, s.Successor = strings.ToUpper(f[0]), strings.ToUpper(f[1])
	if err := checkODS(s.Predecessor); err != nil {
		return s, fmt.Errorf("column 1 (predecessor): %v", err)
	}
	if err := checkODS(s.Successor); err != nil {
		return s, fmt.Errorf("column 2 (successor): %v", err)
	}
	if s.Predecessor == s.Successor {
		return s, errors.New("column 2 (successor): an organisation cannot succeed itself")
	}
	if len(f) > 2 {
		s.Reason = f[2]
	}
	if len(f) > 3 {
		d, err := parseDate(f[3])
		if err != nil {
			return s, fmt.Errorf("column 4 (effective date): %v", err)
		}
		s.Effective = d
	}
	return s, nil
}

// SuccessorReport says what a successor import did.
type SuccessorReport struct {
	Rows      int        `json:"rows"`
	Updated   []string   `json:"updated"`   // predecessors whose successor was set or changed
	Unchanged []string   `json:"unchanged"` // already had that successor
	Unknown   []string   `json:"unknown"`   // predecessors not in the directory, skipped
	Rejected  []Rejected `json:"rejected"`
	Written   bool       `json:"written"`
}

// Summary is one line for a person.
func (r SuccessorReport) Summary() string {
	s := fmt.Sprintf("%d rows: %d successors set, %d unchanged, %d not in the directory, %d rejected",
		r.Rows, len(r.Updated), len(r.Unchanged), len(r.Unknown), len(r.Rejected))
	if !r.Written {
		s += "; nothing written"
	}
	return s
}

// ImportSuccessors reads a succ.csv file and records each known
// predecessor's successor, in one atomic write. The successor is shown to
// senders in refusals; mail is never rerouted to it (only an
// administrator's redirect does that). With strict set, any rejected row
// fails the import with a *StrictError and nothing is written.
func ImportSuccessors(ctx context.Context, d *directory.Directory, r io.Reader, strict bool) (SuccessorReport, error) {
	succ, rejected, err := ParseSuccessors(r)
	rep := SuccessorReport{Rows: len(succ) + len(rejected), Rejected: rejected,
		Updated: []string{}, Unchanged: []string{}, Unknown: []string{}}
	if rep.Rejected == nil {
		rep.Rejected = []Rejected{}
	}
	if err != nil {
		return rep, fmt.Errorf("ods: import successors: %w", err)
	}
	if strict && len(rejected) > 0 {
		return rep, &StrictError{Rejected: rejected}
	}
	var changed []directory.Organisation
	for _, s := range succ {
		o, err := d.Organisation(ctx, s.Predecessor)
		switch {
		case errors.Is(err, directory.ErrNotFound):
			rep.Unknown = append(rep.Unknown, s.Predecessor)
			continue
		case err != nil:
			return rep, fmt.Errorf("ods: import successors: %w", err)
		case o.Successor == s.Successor:
			rep.Unchanged = append(rep.Unchanged, s.Predecessor)
			continue
		}
		o.Successor = s.Successor
		changed = append(changed, o)
		rep.Updated = append(rep.Updated, s.Predecessor)
	}
	if _, err := d.ImportOrganisations(ctx, changed); err != nil {
		return rep, fmt.Errorf("ods: import successors: %w", err)
	}
	rep.Written = true
	return rep, nil
}
