//go:build linux

package spool

import (
	"fmt"
	"os"
	"syscall"
)

// fdatasync makes a segment's appended records durable without the
// metadata flush fsync also pays (fdatasync(2)); retried on EINTR.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			if err != nil {
				return fmt.Errorf("fdatasync %s: %w", f.Name(), err)
			}
			return nil
		}
	}
}
