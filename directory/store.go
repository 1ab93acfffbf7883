package directory

import (
	"context"
	"errors"
	"time"
)

// Store is where the directory keeps its records durably. The Directory
// reads everything once (Load) and serves lookups from memory; every change
// goes through Apply, which is atomic: all of a Batch is written, or none.
//
// Keys are used exactly as given (the Directory normalises them first):
// Organisation.ODS, Endpoint.ID, Account.Username, Challenge.EndpointID.
// Every implementation passes directory/storetest.Run.
type Store interface {
	// Load returns every record and the revision they are at.
	Load(ctx context.Context) (Snapshot, error)
	// Apply writes b atomically and durably, then returns. An empty key in
	// b fails the whole batch with an error wrapping ErrEmptyKey. A
	// non-empty batch advances the revision by exactly one.
	Apply(ctx context.Context, b Batch) error
	// Revision is a counter that Apply advances; a node compares it with
	// Snapshot.Revision to see whether another node has written since its
	// last Load (cluster mode).
	Revision(ctx context.Context) (uint64, error)
}

// ErrEmptyKey means a record in a Batch had no key.
var ErrEmptyKey = errors.New("directory: store: record has an empty key")

// Snapshot is everything a Store holds.
type Snapshot struct {
	Revision      uint64
	Organisations []Organisation
	Endpoints     []Endpoint
	Accounts      []Account
	Challenges    []Challenge
}

// Batch is one atomic write: records to put (replacing any with the same
// key) and challenges and accounts to delete (a missing one is not an
// error).
type Batch struct {
	Organisations    []Organisation
	Endpoints        []Endpoint
	Accounts         []Account
	Challenges       []Challenge
	DeleteChallenges []string // endpoint IDs
	DeleteAccounts   []string // usernames
}

// Empty reports whether b writes nothing.
func (b Batch) Empty() bool {
	return len(b.Organisations) == 0 && len(b.Endpoints) == 0 && len(b.Accounts) == 0 &&
		len(b.Challenges) == 0 && len(b.DeleteChallenges) == 0 && len(b.DeleteAccounts) == 0
}

// CheckKeys returns an error wrapping ErrEmptyKey if any record lacks its key.
// Stores call it before writing anything.
func (b Batch) CheckKeys() error {
	for _, o := range b.Organisations {
		if o.ODS == "" {
			return errors.Join(ErrEmptyKey, errors.New("organisation without ODS code"))
		}
	}
	for _, e := range b.Endpoints {
		if e.ID == "" {
			return errors.Join(ErrEmptyKey, errors.New("endpoint without ID"))
		}
	}
	for _, a := range b.Accounts {
		if a.Username == "" {
			return errors.Join(ErrEmptyKey, errors.New("account without username"))
		}
	}
	for _, c := range b.Challenges {
		if c.EndpointID == "" {
			return errors.Join(ErrEmptyKey, errors.New("challenge without endpoint ID"))
		}
	}
	for _, id := range b.DeleteChallenges {
		if id == "" {
			return errors.Join(ErrEmptyKey, errors.New("challenge delete without endpoint ID"))
		}
	}
	for _, u := range b.DeleteAccounts {
		if u == "" {
			return errors.Join(ErrEmptyKey, errors.New("account delete without username"))
		}
	}
	return nil
}

// Challenge is an outstanding one-time verification code for an endpoint.
// Only a bcrypt hash of the code is kept.
type Challenge struct {
	EndpointID string    `json:"endpoint_id"`
	Address    string    `json:"address"` // where the code was sent
	CodeHash   string    `json:"code_hash"`
	Created    time.Time `json:"created"`
	Expires    time.Time `json:"expires"`
	Attempts   int       `json:"attempts"` // wrong codes entered so far
	By         string    `json:"by,omitempty"`
}
