package faxbridge

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"nhsrelay/audit"
)

// Server is a fax server or scanner allowed to POST faxes: like a sender
// account, it has its own credential, created and revoked by an
// administrator, and every change is audited.
type Server struct {
	Name      string    `json:"name"`
	TokenHash string    `json:"token_hash"` // SHA-256 of the secret, hex
	Created   time.Time `json:"created"`
	Revoked   time.Time `json:"revoked,omitzero"`
}

// ErrNoServer means no fax server has the name.
var ErrNoServer = errors.New("faxbridge: no such fax server")

func validServerName(n string) error {
	if n == "" || len(n) > 64 {
		return errors.New("name must be 1 to 64 characters")
	}
	for _, c := range n {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return errors.New("name may hold only a-z, 0-9, - and _")
		}
	}
	return nil
}

// AddServer creates a fax server credential and returns its token
// ("name.secret"), shown once; only its hash is kept.
func (b *Bridge) AddServer(name, actor string) (string, error) {
	if err := validServerName(name); err != nil {
		return "", fmt.Errorf("faxbridge: fax server %q: %w", name, err)
	}
	var secret [24]byte
	rand.Read(secret[:])
	token := name + "." + base64.RawURLEncoding.EncodeToString(secret[:])
	sum := sha256.Sum256([]byte(token))
	err := b.state.db.Update(func(tx *bolt.Tx) error {
		var old Server
		if ok, err := get(tx, bucketServers, name, &old); err != nil {
			return err
		} else if ok && old.Revoked.IsZero() {
			return fmt.Errorf("fax server %s exists; revoke it first", name)
		}
		return put(tx, bucketServers, name, Server{Name: name, TokenHash: hex.EncodeToString(sum[:]), Created: b.cfg.Now()})
	})
	if err != nil {
		return "", fmt.Errorf("faxbridge: add fax server: %w", err)
	}
	b.record(context.Background(), audit.Event{Actor: actor, Action: "fax.server_added", Endpoint: name, Outcome: "ok"})
	return token, nil
}

// RevokeServer revokes a fax server's credential at once.
func (b *Bridge) RevokeServer(name, actor string) error {
	err := b.state.db.Update(func(tx *bolt.Tx) error {
		var s Server
		if ok, err := get(tx, bucketServers, name, &s); err != nil {
			return err
		} else if !ok || !s.Revoked.IsZero() {
			return ErrNoServer
		}
		s.Revoked = b.cfg.Now()
		return put(tx, bucketServers, name, s)
	})
	if err != nil {
		return fmt.Errorf("faxbridge: revoke %s: %w", name, err)
	}
	b.record(context.Background(), audit.Event{Actor: actor, Action: "fax.server_revoked", Endpoint: name, Outcome: "ok"})
	return nil
}

// Servers lists fax servers (hashes left out), by name.
func (b *Bridge) Servers() ([]Server, error) {
	var out []Server
	err := b.state.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketServers).ForEach(func(_, v []byte) error {
			var s Server
			if err := json.Unmarshal(v, &s); err != nil {
				return err
			}
			s.TokenHash = ""
			out = append(out, s)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// authenticate returns the server a token belongs to, if live.
func (b *Bridge) authenticate(token string) (string, bool) {
	name, _, ok := strings.Cut(token, ".")
	if !ok || validServerName(name) != nil {
		return "", false
	}
	var s Server
	found := false
	b.state.db.View(func(tx *bolt.Tx) error {
		found, _ = get(tx, bucketServers, name, &s)
		return nil
	})
	sum := sha256.Sum256([]byte(token))
	want, _ := hex.DecodeString(s.TokenHash)
	if !found || !s.Revoked.IsZero() || subtle.ConstantTimeCompare(sum[:], want) != 1 {
		return "", false
	}
	return name, true
}
