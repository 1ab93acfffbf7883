// Package directorytest builds real directories for other packages' tests:
// a *directory.Directory over a bbolt store in t.TempDir(), seeded with the
// endpoints a test needs, plus a recording Mailer, a recording audit log and
// a settable clock.
package directorytest
