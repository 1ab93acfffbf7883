package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ImportOrganisations applies an ODS extract in one atomic write and says
// what changed. Organisations not in orgs are left alone (ODS publishes
// closures as rows). Importing the same data again changes nothing. An
// organisation that is closed or dormant has its pending and verified
// endpoints suspended, with the reason in words ("practice closed on
// 2024-03-31"), in the same write. A successor or kind known here but
// absent from the extract is kept. Any invalid organisation fails the whole
// import with a *ValidationError whose fields are "<ODS>.<field>"; the ODS
// importer rejects bad rows first with NormaliseOrganisation.
func (d *Directory) ImportOrganisations(ctx context.Context, orgs []Organisation) (ImportResult, error) {
	var res ImportResult
	f := fieldErrors{}
	norm := make([]Organisation, 0, len(orgs))
	seen := make(map[string]int, len(orgs))
	for i, o := range orgs {
		n, err := NormaliseOrganisation(o)
		key := n.ODS
		if key == "" {
			key = fmt.Sprintf("#%d", i+1)
		}
		var ve *ValidationError
		if errors.As(err, &ve) {
			for k, v := range ve.Fields {
				f.add(key+"."+k, "%s", v)
			}
			continue
		}
		if j, dup := seen[n.ODS]; dup {
			f.add(key+".ods", "appears twice (entries %d and %d)", j+1, i+1)
			continue
		}
		seen[n.ODS] = i
		n.Source = SourceODS
		norm = append(norm, n)
	}
	if err := f.err(); err != nil {
		d.record(ctx, "directory.import", "", outcomeRefused, err.Error())
		return res, err
	}

	d.wmu.Lock()
	defer d.wmu.Unlock()
	now := d.cfg.Now()
	var b Batch
	var suspended, restored []Endpoint
	for _, n := range norm {
		old, existed := d.orgs[n.ODS]
		reopened := existed && closedish(old) && !closedish(n)
		if existed {
			if !reopened { // a reopened practice has no successor
				n.Successor = cmpOr(n.Successor, old.Successor)
			}
			n.Kind = cmpOr(n.Kind, old.Kind)
			n.ImportedAt = old.ImportedAt
		}
		switch {
		case reopened:
			res.Reopened = append(res.Reopened, n.ODS)
		case !existed:
			res.Added = append(res.Added, n.ODS)
		case sameOrganisation(old, n):
			res.Unchanged = append(res.Unchanged, n.ODS)
		case closedish(n) && !closedish(old):
			res.Closed = append(res.Closed, n.ODS)
		default:
			res.Updated = append(res.Updated, n.ODS)
		}
		if !existed || !sameOrganisation(old, n) {
			n.ImportedAt = now
			b.Organisations = append(b.Organisations, n)
		}
		suspended = append(suspended, d.suspendForClosure(&b, n)...)
		if reopened {
			restored = append(restored, d.restoreAfterReopen(&b, old, n)...)
		}
	}
	for _, e := range suspended {
		res.Suspended = append(res.Suspended, e.Address)
	}
	for _, e := range restored {
		res.Restored = append(res.Restored, e.Address)
	}
	for _, l := range [][]string{res.Added, res.Updated, res.Closed, res.Reopened, res.Unchanged, res.Suspended, res.Restored} {
		slices.Sort(l)
	}
	if err := d.commit(ctx, "import organisations", b); err != nil {
		d.record(ctx, "directory.import", "", outcomeFailed, err.Error())
		return ImportResult{}, err
	}
	d.log.Info("directory: organisations imported", "added", len(res.Added), "updated", len(res.Updated),
		"closed", len(res.Closed), "unchanged", len(res.Unchanged), "suspended", len(res.Suspended))
	d.record(ctx, "directory.import", "", outcomeOK, fmt.Sprintf("%d added, %d updated, %d closed, %d reopened, %d unchanged, %d endpoints suspended, %d restored",
		len(res.Added), len(res.Updated), len(res.Closed), len(res.Reopened), len(res.Unchanged), len(res.Suspended), len(res.Restored)))
	for _, ods := range res.Closed {
		o := d.orgs[ods]
		d.record(ctx, "organisation.closed", "", outcomeOK, "ODS "+ods+" "+orgClosedReason(o))
	}
	for _, ods := range res.Reopened {
		d.record(ctx, "organisation.reopened", "", outcomeOK, "ODS "+ods+" "+string(d.orgs[ods].Status)+" again")
	}
	d.recordSuspensions(ctx, suspended)
	d.recordRestorations(ctx, restored)
	return res, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func closedish(o Organisation) bool { return o.Status == OrgClosed || o.Status == OrgDormant }

// sameOrganisation compares everything but ImportedAt, by value (JSON), so
// time zones and monotonic readings do not count as changes.
func sameOrganisation(a, b Organisation) bool {
	a.ImportedAt, b.ImportedAt = time.Time{}, time.Time{}
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}
