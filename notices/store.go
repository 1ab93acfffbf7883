package notices

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound means no notice (or credential) has the key asked for.
var ErrNotFound = errors.New("notices: not found")

// ErrExists means Create was given a reference that is already taken.
var ErrExists = errors.New("notices: reference already exists")

// Store keeps notices, credentials and print runs. Every method that
// changes state returns only after the change is on stable storage.
// notices/storetest is the contract every implementation passes;
// notices/boltstore is the embedded one.
type Store interface {
	Get(ctx context.Context, reference string) (Notice, error) // wraps ErrNotFound
	Create(ctx context.Context, n Notice) error                // wraps ErrExists if the reference is taken
	// Update reads, changes with fn and writes back atomically; if fn
	// returns an error nothing is written and Update returns it.
	Update(ctx context.Context, reference string, fn func(*Notice) error) error
	// Each calls fn for every notice, in reference order, until fn
	// returns false.
	Each(ctx context.Context, fn func(Notice) bool) error

	PutCredential(ctx context.Context, c Credential) error
	Credentials(ctx context.Context) ([]Credential, error) // ordered by ID

	PutRun(ctx context.Context, r PrintRun) error
	Run(ctx context.Context, id string) (PrintRun, error) // wraps ErrNotFound
	Runs(ctx context.Context) ([]PrintRun, error)         // ordered by ID

	Close() error
}

// PrintRun is one batch of letters printed together.
type PrintRun struct {
	ID         string    `json:"id"`
	Created    time.Time `json:"created"`
	Cutoff     time.Time `json:"cutoff"`
	References []string  `json:"references"`
	Printed    time.Time `json:"printed,omitzero"`
	PDF        []byte    `json:"pdf,omitempty"`
}
