package timeline_test

import (
	"path/filepath"
	"testing"

	"nhsrelay/audit/timeline"
	"nhsrelay/audit/timeline/timelinetest"
)

func TestBoltContract(t *testing.T) {
	timelinetest.Run(t, func(t *testing.T) timeline.Store {
		return openBolt(t, filepath.Join(t.TempDir(), "timeline.db"))
	})
}

func openBolt(t *testing.T, path string) *timeline.BoltStore {
	t.Helper()
	s, err := timeline.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
