package relay_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nhsrelay/audit/audittest"
	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
	"nhsrelay/relay"
	"nhsrelay/relay/queue"
)

// queueThenStop queues bodies on a relay that never delivers, closes its
// store as a stopped relay would, and returns the queue IDs.
func queueThenStop(t *testing.T, spoolDir, storePath string, key []byte, bodies []string) []string {
	t.Helper()
	st, err := queue.OpenBolt(storePath)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, newDir(), func(cfg *relay.Config) { cfg.SpoolDir, cfg.SpoolKey, cfg.Store = spoolDir, key, st })
	var ids []string
	for _, b := range bodies {
		ids = append(ids, e.submit(t, sender, []string{"ward7@hosted.nhs.example"}, b))
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// restart runs a relay on the folder and store a stopped relay left,
// with an audit recorder and its log kept for the test.
func restart(t *testing.T, spoolDir, storePath string, key []byte) (*env, *directorytest.AuditLog, *audittest.Logs) {
	t.Helper()
	alog, logs := &directorytest.AuditLog{}, &audittest.Logs{}
	d := newDir()
	d.add("ward7@hosted.nhs.example", directory.NextHop{Kind: directory.HopHosted})
	e := start(t, d, func(cfg *relay.Config) {
		cfg.SpoolDir, cfg.SpoolKey, cfg.Store = spoolDir, key, openStore(t, storePath)
		cfg.Audit = alog
		cfg.Logger = logs.Logger()
	})
	return e, alog, logs
}

// recordOffsets returns where each record of a segment starts.
func recordOffsets(t *testing.T, raw []byte) []int {
	t.Helper()
	var offs []int
	for off := 0; off+9 < len(raw); {
		if string(raw[off:off+4]) != "NRS2" {
			t.Fatalf("no record at %d", off)
		}
		offs = append(offs, off)
		idLen := int(raw[off+4])
		n := int(binary.BigEndian.Uint32(raw[off+5+idLen:]))
		off += 4 + 1 + idLen + 4 + 4 + n + 4
	}
	return offs
}

// wantLost checks everything that must follow the loss of message id: it
// leaves the queue after one attempt (no retry for days), its sender gets
// one failure DSN naming it and when it was accepted, the operator an
// error log line, the metric and an audit event.
func wantLost(t *testing.T, e *env, alog *directorytest.AuditLog, logs *audittest.Logs, id, logWords string) string {
	t.Helper()
	e.waitGone(t, id)
	dsns := e.waitMailbox(t, sender, 1)
	if len(dsns) != 1 {
		t.Fatalf("sender got %d DSNs, want 1", len(dsns))
	}
	rep := parseDSN(t, dsns[0])
	if rep.QueueID != id || len(rep.Recipients) != 1 || rep.Recipients[0].Status != "5.3.0" || rep.Recipients[0].Action != "failed" {
		t.Errorf("DSN = queue %s, recipients %+v; want %s failed 5.3.0", rep.QueueID, rep.Recipients, id)
	}
	accepted := newClock().Now().UTC().Format(time.RFC1123)
	if !strings.Contains(rep.Human, "queue ID "+id) || !strings.Contains(rep.Human, accepted) {
		t.Errorf("DSN text does not name the queue ID and the time accepted (%s):\n%s", accepted, rep.Human)
	}
	if n := e.metric(t, "nhsrelay_relay_lost_total"); n != 1 {
		t.Errorf("nhsrelay_relay_lost_total = %v, want 1", n)
	}
	if evs := alog.Find("lost"); len(evs) != 1 || evs[0].QueueID != id {
		t.Errorf("audit lost events = %+v, want one for %s", evs, id)
	}
	l := logs.String()
	if !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "msgid="+id) || !strings.Contains(l, logWords) {
		t.Errorf("log does not say at error level what happened to %s (%q):\n%s", id, logWords, l)
	}
	if strings.Contains(l, "queue record without its spool file") {
		t.Error("the old, misleading log line is back")
	}
	return rep.Human
}

// The reproduction: one flipped bit in record 2 of a segment of
// ten queued messages. The nine others are delivered after the restart;
// the damaged one is failed at once and never silently.
func TestSegmentBitFlipAtRestart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		at       func(rec, next int) int // offset to flip, given record 2's start and record 3's
		logWords string
	}{
		{"sealed bytes", func(rec, next int) int { return (rec + next) / 2 }, "fail their CRC-32C"},
		{"record header", func(rec, next int) int { return rec + 6 }, "damaged stretches whose message could not be named"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tmp := t.TempDir()
			spoolDir, storePath, key := filepath.Join(tmp, "spool"), filepath.Join(tmp, "queue.db"), spoolKey(t)
			var bodies []string
			for i := range 10 {
				bodies = append(bodies, message("referral", fmt.Sprintf("seg%d", i)))
			}
			ids := queueThenStop(t, spoolDir, storePath, key, bodies)
			segs, _ := filepath.Glob(filepath.Join(spoolDir, "*.seg"))
			if len(segs) != 1 {
				t.Fatalf("segments = %v, want one", segs)
			}
			raw, _ := os.ReadFile(segs[0])
			offs := recordOffsets(t, raw)
			raw[tc.at(offs[1], offs[2])] ^= 0x04
			if err := os.WriteFile(segs[0], raw, 0o600); err != nil {
				t.Fatal(err)
			}

			e, alog, logs := restart(t, spoolDir, storePath, key)
			wantLost(t, e, alog, logs, ids[1], tc.logWords)
			got := e.waitMailbox(t, "ward7@hosted.nhs.example", 9)
			for i, id := range ids {
				if i == 1 {
					continue
				}
				found := false
				for _, m := range got {
					found = found || bytes.Contains(m, []byte(fmt.Sprintf("seg%d@", i)))
				}
				if !found {
					t.Errorf("message %d (%s) was not delivered", i, id)
				}
			}
		})
	}
}

// A body file with a bit flipped at several offsets, or cut short: found
// at start-up (header, last chunk, truncation) or at the first delivery
// attempt (an earlier chunk), and failed at once with the DSN and alert.
func TestBodyFileDamageFailsAtOnce(t *testing.T) {
	t.Parallel()
	const headerSize, sealedChunk = 32, 64<<10 + 16
	for _, tc := range []struct {
		name  string
		edit  func([]byte) []byte
		msgID bool // the header chunk still reads: the DSN names the Message-ID
	}{
		{"file header", func(b []byte) []byte { b[20] ^= 1; return b }, false},
		{"second chunk", func(b []byte) []byte { b[headerSize+sealedChunk+999] ^= 0x20; return b }, true},
		{"last chunk", func(b []byte) []byte { b[len(b)-3] ^= 1; return b }, false},
		{"cut at a chunk boundary", func(b []byte) []byte { return b[:headerSize+2*sealedChunk] }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tmp := t.TempDir()
			spoolDir, storePath, key := filepath.Join(tmp, "spool"), filepath.Join(tmp, "queue.db"), spoolKey(t)
			big := message("scan", "bigbody") + strings.Repeat("Radiology report line.\r\n", 9000) // ~3.3 chunks
			ids := queueThenStop(t, spoolDir, storePath, key, []string{big, message("letter", "small")})
			path := filepath.Join(spoolDir, ids[0]+".msg")
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tc.edit(raw), 0o600); err != nil {
				t.Fatal(err)
			}

			e, alog, logs := restart(t, spoolDir, storePath, key)
			human := wantLost(t, e, alog, logs, ids[0], "spool")
			if tc.msgID != strings.Contains(human, "Message-ID <bigbody@practice.nhs.example>") {
				t.Errorf("DSN names the Message-ID: %v, want %v:\n%s", !tc.msgID, tc.msgID, human)
			}
			if got := e.waitMailbox(t, "ward7@hosted.nhs.example", 1); !bytes.Contains(got[0], []byte("small@")) {
				t.Error("the undamaged message was not delivered")
			}
			// The record goes first, then the body (Relay.remove).
			waitFor(t, "the damaged body file to be removed", func() bool {
				_, err := os.Stat(path)
				return os.IsNotExist(err)
			})
		})
	}
}
