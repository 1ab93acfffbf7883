package directory

import (
	"errors"
	"fmt"
)

// ErrAuditUnavailable means a directory change was refused, and nothing
// changed, because the audit log cannot record it now (DESIGN: no change
// without its audit record). The log recovers by itself once it can write
// again (a full disk freed); the caller tries again then.
var ErrAuditUnavailable = errors.New("directory: audit log unavailable, change not made; try again when it recovers")

// auditHealth is the optional ability of an audit.Recorder to say it cannot
// record now; *audit.Log has it.
type auditHealth interface {
	Err() error
}

// auditGate returns ErrAuditUnavailable, wrapped with the log's reason,
// while the audit log cannot record; every change checks it first.
func (d *Directory) auditGate() error {
	h, ok := d.cfg.Audit.(auditHealth)
	if !ok {
		return nil
	}
	if err := h.Err(); err != nil {
		d.log.Error("directory change refused: audit log unavailable", "err", err)
		return fmt.Errorf("%w: %v", ErrAuditUnavailable, err)
	}
	return nil
}
