//go:build unix

package maildir

import (
	"io/fs"
	"syscall"
)

// linkCount is the number of names (hard links) fi's file has.
func linkCount(fi fs.FileInfo) (uint64, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return uint64(st.Nlink), true
}
