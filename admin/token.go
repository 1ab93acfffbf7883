package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
)

// MinTokenLength is the shortest token accepted (check-config says the same).
const MinTokenLength = 16

// Token holds the bearer token's SHA-256; Reload re-reads the file so a
// token can be rotated without a restart.
type Token struct {
	path string
	sum  atomic.Pointer[[sha256.Size]byte]
}

// LoadToken reads the token from path (admin.token_file).
func LoadToken(path string) (*Token, error) {
	t := &Token{path: path}
	return t, t.Reload()
}

// Reload reads the file again; on error the token in force stays.
func (t *Token) Reload() error {
	b, err := os.ReadFile(t.path)
	if err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < MinTokenLength {
		return fmt.Errorf("admin token %s: shorter than %d characters", t.path, MinTokenLength)
	}
	sum := sha256.Sum256([]byte(tok))
	t.sum.Store(&sum)
	return nil
}

// Check compares the presented token in constant time. Both sides are
// hashed first so that neither the length nor a prefix of the real token
// shows in the timing.
func (t *Token) Check(presented string) bool {
	got := sha256.Sum256([]byte(presented))
	want := t.sum.Load()
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// bearer returns the credentials of an "Authorization: Bearer <token>"
// header. The scheme name is case-insensitive (RFC 9110 §11.1), and one
// or more spaces may follow it (RFC 9110 §11.4: 1*SP).
func bearer(header string) (string, bool) {
	scheme, rest, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(rest), true
}
