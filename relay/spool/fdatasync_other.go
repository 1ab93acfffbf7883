//go:build !linux

package spool

import (
	"fmt"
	"os"
)

// fdatasync falls back to a full fsync where fdatasync(2) is missing
// (macOS, the BSDs): slower, never less durable. On macOS os.File.Sync
// issues F_FULLFSYNC, which also flushes the drive's cache.
func fdatasync(f *os.File) error {
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", f.Name(), err)
	}
	return nil
}
