//go:build !unix

package maildir

import "io/fs"

// linkCount is unknown here; Deliver then refuses to guess after a crash.
func linkCount(fs.FileInfo) (uint64, bool) { return 0, false }
