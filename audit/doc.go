// Package audit is the append-only, hash-chained audit log: every step a
// message or a directory entry goes through is one Event (who, what, which
// ID, which endpoint, outcome — never content). Each record carries the
// SHA-256 of the record before it, so a changed or removed record breaks the
// chain at a point Verify can name. It is a leaf package: any package may
// record events through the Recorder interface.
//
// Log (Open, Record, Err, Close) writes the chain to a file, one JSON record per
// line, fsynced before Record returns; Verify checks a file and names the
// first broken record in a *BrokenError. record.go describes the format.
//
// ReadFrom tails a log another process may be writing (complete records
// only, from where the last call stopped); the message timeline
// (audit/timeline) is built from it. Fields and WithFields/SplitFields put
// the facts a timeline shows at the end of an event's Detail as
// `words {key=value ...}` — identifiers and protocol text, never content.
package audit
