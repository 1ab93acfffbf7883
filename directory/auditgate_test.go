//go:build linux

package directory_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"nhsrelay/audit"
	"nhsrelay/audit/audittest"
	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

// No directory change happens while its audit record cannot be written: a
// full disk under the audit log refuses the change (nothing changes), and
// once the disk has room the log recovers by itself and the same change is
// made and audited.
func TestNoDirectoryChangeWhileAuditLogDown(t *testing.T) {
	t.Parallel()
	disk := audittest.SmallDisk(t, 256<<10)
	clock := directorytest.NewClock(t0)
	logPath := filepath.Join(disk, "audit.log")
	alog, err := audit.OpenWith(logPath, audit.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alog.Close() })
	d, err := directory.Open(t.Context(), directory.Config{Store: directorytest.NewStore(t), Now: clock.Now, Audit: alog,
		Mailer: &directorytest.Mailer{}, ChallengeFrom: "directory@relay.nhs.example", HashCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	org := directory.Organisation{ODS: "A81001", Name: "Riverside", Status: directory.OrgActive}
	mustOrg(t, d, org)

	free := audittest.Fill(t, disk)
	for i := 0; alog.Err() == nil; i++ {
		if i == 500 {
			t.Fatal("the audit log never failed on a full disk")
		}
		alog.Record(audit.Event{Actor: "test", Action: "test.fill", Outcome: "ok"})
	}
	ep := directory.Endpoint{Address: "reception.a81001@nhs.example", ODS: "A81001",
		NextHop: directory.NextHop{Kind: directory.HopHosted}}
	if _, err := d.AddEndpoint(admin(t), ep); !errors.Is(err, directory.ErrAuditUnavailable) {
		t.Fatalf("AddEndpoint with the audit log down = %v, want ErrAuditUnavailable", err)
	}
	if _, err := d.Lookup(t.Context(), ep.Address); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("the refused endpoint is in the directory: %v", err)
	}

	free()
	clock.Advance(2 * time.Second) // the log tries again once per second
	if _, err := d.AddEndpoint(admin(t), ep); err != nil {
		t.Fatalf("AddEndpoint after the audit log recovered: %v", err)
	}
	alog.Close()
	raw, _ := os.ReadFile(logPath)
	if !strings.Contains(string(raw), `"action":"endpoint.added"`) || !strings.Contains(string(raw), `"action":"audit.recovered"`) {
		t.Errorf("audit log lacks the recovery or the change:\n%s", raw)
	}
	if _, err := audit.Verify(logPath); err != nil {
		t.Errorf("Verify: %v", err)
	}
}
