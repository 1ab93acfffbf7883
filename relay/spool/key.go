package spool

import "errors"

// KeySize is the length of a spool key in bytes.
const KeySize = 32

// CreateKey writes a new random key to path (mode 0600); it never
// overwrites an existing file.
func CreateKey(path string) error { return errors.New("spool: not implemented yet") }

// LoadKey reads the key at path, refusing a file that group or others can read.
func LoadKey(path string) ([]byte, error) { return nil, errors.New("spool: not implemented yet") }
