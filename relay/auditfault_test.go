//go:build linux

package relay_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"nhsrelay/audit"
	"nhsrelay/audit/audittest"
	"nhsrelay/directory"
	"nhsrelay/relay"
	"nhsrelay/relay/queue"
)

// While the audit log cannot be written (a full disk) nothing is
// delivered: the attempt is deferred, not failed. An event refused in the
// moment the log broke is kept and written once the log recovers by
// itself, and then the delivery happens, audited.
func TestNoDeliveryWhileAuditLogDown(t *testing.T) {
	t.Parallel()
	disk := audittest.SmallDisk(t, 256<<10)
	logPath := filepath.Join(disk, "audit.log")
	var alog *audit.Log
	d := newDir()
	d.add("ward7@hosted.nhs.example", directory.NextHop{Kind: directory.HopHosted})
	e := newEnv(t, d, func(cfg *relay.Config) {
		var err error
		alog, err = audit.OpenWith(logPath, audit.Options{Now: cfg.Now})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Audit = alog
	})
	t.Cleanup(func() { alog.Close() })
	first := e.submit(t, sender, []string{"ward7@hosted.nhs.example"}, message("referral", "audit1"))

	free := audittest.Fill(t, disk)
	for i := 0; alog.Err() == nil; i++ { // the last page may still take a few lines
		if i == 500 {
			t.Fatal("the audit log never failed on a full disk")
		}
		alog.Record(audit.Event{Actor: "test", Action: "test.fill", Outcome: "ok"})
	}
	// Accepted in the moment the log broke (smtpd refuses MAIL while it
	// is down): its audit event waits in memory.
	second := e.submit(t, sender, []string{"ward7@hosted.nhs.example"}, message("referral", "audit2"))
	for _, id := range []string{first, second} {
		relay.Attempt(e.r, t.Context(), id)
	}
	if got := e.mailbox(t, "ward7@hosted.nhs.example"); len(got) != 0 {
		t.Fatalf("%d messages delivered while the audit log was down", len(got))
	}
	for _, id := range []string{first, second} {
		m, err := e.r.Get(t.Context(), id)
		if err != nil || m.Recipients[0].State != queue.Queued || m.Recipients[0].Attempts != 0 {
			t.Fatalf("message %s after an attempt with the audit log down = %+v, %v; want queued, untouched", id, m, err)
		}
	}

	free()
	e.clock.Advance(2 * time.Second) // the log tries again once per second
	for _, id := range []string{first, second} {
		relay.Attempt(e.r, t.Context(), id)
	}
	if got := e.mailbox(t, "ward7@hosted.nhs.example"); len(got) != 2 {
		t.Fatalf("%d messages delivered after the audit log recovered, want 2", len(got))
	}
	alog.Close()
	if _, err := audit.Verify(logPath); err != nil {
		t.Fatalf("audit log after recovery: %v", err)
	}
	raw, _ := os.ReadFile(logPath)
	rec := bytes.Index(raw, []byte(`"action":"audit.recovered"`))
	acc := bytes.Index(raw, []byte(`"action":"accepted","queue_id":"`+second+`"`))
	del := bytes.Index(raw, []byte(`"action":"delivered","queue_id":"`+second+`"`))
	if rec < 0 || acc < rec || del < acc {
		t.Errorf("audit log order: recovered at %d, accepted %s at %d, delivered at %d; want them in that order", rec, second, acc, del)
	}
}
