// Package directorytest builds real directories for other packages' tests:
// a *directory.Directory over a bbolt store in t.TempDir(), seeded with the
// endpoints a test needs, plus a recording Mailer, a recording audit log and
// a settable clock.
//
// Main functions and types: New and Open (a directory), NewStore and Seed
// (a store, bypassing validation), Verified, Pending and Suspended (test
// endpoints owned by ODS), Account; Mailer, AuditLog and Clock for Config.
package directorytest
