package directory

import "sync/atomic"

// CountCompares replaces d's password comparison with one that counts its
// calls and then runs the real one, so tests can tell a cached login from a
// bcrypt check without timing. Call it before d is shared.
func CountCompares(d *Directory) *atomic.Int64 {
	var n atomic.Int64
	real := d.compare
	d.compare = func(hash, pass []byte) error {
		n.Add(1)
		return real(hash, pass)
	}
	return &n
}

// AuthCacheLen is the number of cached logins.
func AuthCacheLen(d *Directory) int { return d.logins.len() }
