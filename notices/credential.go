package notices

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"strings"
	"time"
)

// Credential lets one sending system (a PAS, a booking system) post
// notices for the organisations it is scoped to. Only the SHA-256 of its
// secret is kept: the token is shown once, when it is made.
type Credential struct {
	ID            string    `json:"id"` // "nc-..." (in the token, audit events and notices)
	Name          string    `json:"name"`
	Organisations []string  `json:"organisations"` // ODS codes it may post for
	SecretHash    string    `json:"secret_hash"`   // hex SHA-256 of the token's secret part
	Created       time.Time `json:"created"`
	Revoked       time.Time `json:"revoked,omitzero"`
	// Webhook, when set, gets every status change of this credential's
	// notices, signed with WebhookSecret (HMAC-SHA256).
	Webhook       string `json:"webhook,omitempty"`
	WebhookSecret string `json:"webhook_secret,omitempty"`
}

// Allows reports whether the credential may act for organisation ods.
func (c Credential) Allows(ods string) bool {
	for _, o := range c.Organisations {
		if o == ods {
			return true
		}
	}
	return false
}

var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func randomText(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails on supported platforms (Go 1.24+)
	return tokenEncoding.EncodeToString(b)
}

// newCredential makes a credential and its bearer token
// "nhsn_<id>_<secret>"; the token is returned once and not kept.
func newCredential(name string, orgs []string, webhook string, now time.Time) (Credential, string) {
	id := "nc-" + randomText(5)
	secret := randomText(20)
	c := Credential{ID: id, Name: name, Organisations: orgs, SecretHash: hashSecret(secret), Created: now, Webhook: webhook}
	if webhook != "" {
		c.WebhookSecret = randomText(20)
	}
	return c, "nhsn_" + id + "_" + secret
}

func hashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// parseToken splits a bearer token into credential ID and secret.
func parseToken(tok string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(tok, "nhsn_")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '_')
	if i <= 0 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// matches compares a presented secret in constant time.
func (c Credential) matches(secret string) bool {
	return subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(c.SecretHash)) == 1
}
