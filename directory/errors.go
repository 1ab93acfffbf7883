package directory

import (
	"errors"
	"fmt"
)

// ErrNotFound means no organisation, endpoint or account has the key asked for.
var ErrNotFound = errors.New("directory: not found")

// ErrAuthFailed means a username or password did not match an active account.
var ErrAuthFailed = errors.New("directory: authentication failed")

// NotVerifiedError says why a known endpoint may not receive clinical mail
// now. Reason is written for a person ("practice closed on 2024-03-31").
type NotVerifiedError struct {
	Address   string
	Status    EndpointStatus
	Reason    string
	Successor string // "<ODS> <address>" of a successor, if any
}

func (e *NotVerifiedError) Error() string {
	s := fmt.Sprintf("directory: %s is %s", e.Address, e.Status)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}
