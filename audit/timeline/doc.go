// Package timeline is the one timeline of each message (issue 12): an
// index built over the audit log, never a second writer. The Indexer tails
// the log (audit.ReadFrom) at start-up, on a timer and before every query,
// and files each event under the keys it can be found by: its queue ID, the
// Message-ID it was accepted with, every recipient it names, and — for a
// delivery report or read receipt that came back (dsn.received,
// mdn.received) — the Message-ID of the original, so the report shows on
// the original's timeline.
//
// What a timeline shows comes from the events' fields (audit.Fields):
// accepted (account, client IP, size, recipients, Message-ID), sealed
// (algorithms, certificate fingerprints), each attempt's outcome (next
// hop, TLS version, peer certificate, reply), DSN sent, DSN and MDN
// received, quarantined and released. Never content. Message then says, in
// words, which recipients have the message and which do not yet; Report
// prints it as a fax machine's transmission report.
//
// The index lives behind Store, a small interface with one contract suite
// (timelinetest) that every implementation runs; BoltStore is the embedded
// one (timeline.db in data_dir). The index can always be rebuilt from the
// log: a store whose position no longer matches the log is emptied and
// filled again.
//
// Main types: Indexer (Open, CatchUp, Run, Find, Handler), Message,
// Recipient, Event, Store, BoltStore.
package timeline
