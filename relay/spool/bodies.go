package spool

import "io"

// Bodies is where the relay keeps message bodies, sealed as described in
// stream.go: the spool folder (Spool, one node) or Redis (Redis, a
// cluster). Every implementation passes spooltest.Run.
type Bodies interface {
	// Write seals body under id and returns the plaintext bytes written
	// only once the body is on stable storage (RFC 5321 §6.1: nothing is
	// lost after the 250). ErrExists if id is taken, ErrBadID if id is
	// not a valid ID; on any error nothing is kept under id.
	Write(id string, body io.Reader) (int64, error)
	// Open returns a decrypting reader; a missing id wraps fs.ErrNotExist,
	// a body sealed under another key ErrWrongKey, tampering ErrCorrupt.
	Open(id string) (io.ReadCloser, error)
	// Remove deletes id's body; a missing body is not an error.
	Remove(id string) error
	// IDs lists, sorted, the bodies recovery may match against queue
	// records and remove if they have none. A store shared by several
	// nodes leaves out bodies younger than its orphan age: they may be a
	// Write on another node whose record is not committed yet.
	IDs() ([]string, error)
	// Damaged returns the damage found when the store was opened (torn or
	// corrupt records of the spool folder's files); a store whose bodies
	// are whole or absent (Redis) returns none.
	Damaged() []Damage
}

var (
	_ Bodies = (*Spool)(nil)
	_ Bodies = (*Redis)(nil)
)
