package directory

import (
	"container/list"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"sync"
	"time"
)

// Login cache defaults.
const (
	// DefaultAuthCacheTTL is how long a successful login is remembered
	// (Dovecot's auth_cache_ttl is 1 hour; ours is shorter).
	DefaultAuthCacheTTL = 5 * time.Minute
	// DefaultAuthCacheSize bounds the cache; the oldest entry goes first.
	DefaultAuthCacheSize = 10000
)

// authCache remembers successful logins so that a client that logs in on
// every connection costs one bcrypt comparison per TTL rather than one per
// connection, as Dovecot's auth_cache does. It holds no password and no
// hash of one that could be attacked offline: an entry is an HMAC-SHA256,
// under a random key made for this process, of username, NUL, password.
//
// Only successes are cached. A wrong password never matches an entry and
// always costs a full bcrypt comparison, so guessing stays as slow as
// without the cache. An entry is also tied to the account's password hash
// when it was made: a hit counts only while the account still has that
// hash and is not disabled, so a change that reaches memory by any path
// (PutAccount, an import, Refresh from another node) ends it at once; the
// explicit drops in commit and load are a second line.
type authCache struct {
	ttl time.Duration
	max int
	key [32]byte

	mu    sync.Mutex
	users map[string]*list.Element // lower-case username → element of order
	order *list.List               // of *authEntry, oldest first
}

type authEntry struct {
	user    string
	mac     [sha256.Size]byte
	hash    string // Account.PasswordHash the password was checked against
	expires time.Time
}

// newAuthCache returns a cache, or nil (disabled) when ttl is not positive.
func newAuthCache(ttl time.Duration, max int) *authCache {
	if ttl <= 0 {
		return nil
	}
	if max <= 0 {
		max = DefaultAuthCacheSize
	}
	c := &authCache{ttl: ttl, max: max, users: map[string]*list.Element{}, order: list.New()}
	rand.Read(c.key[:]) // never fails (crypto/rand, Go 1.24+)
	return c
}

func (c *authCache) mac(user, pass string) [sha256.Size]byte {
	m := hmac.New(sha256.New, c.key[:])
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(pass))
	var out [sha256.Size]byte
	m.Sum(out[:0])
	return out
}

// hit reports whether user (lower case) logged in with pass, against an
// account whose hash is still hash, within the TTL. A stale entry is
// dropped. A nil cache never hits.
func (c *authCache) hit(user, pass, hash string, now time.Time) bool {
	if c == nil {
		return false
	}
	want := c.mac(user, pass)
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.users[user]
	if !ok {
		return false
	}
	e := el.Value.(*authEntry)
	if !now.Before(e.expires) || subtle.ConstantTimeCompare([]byte(e.hash), []byte(hash)) != 1 {
		c.order.Remove(el)
		delete(c.users, user)
		return false
	}
	// A different password is a miss, not a reason to drop the entry: a
	// guesser must not be able to evict a user's cached login.
	return hmac.Equal(e.mac[:], want[:])
}

// put remembers a successful login, evicting the oldest entries beyond max.
func (c *authCache) put(user, pass, hash string, now time.Time) {
	if c == nil {
		return
	}
	e := &authEntry{user: user, mac: c.mac(user, pass), hash: hash, expires: now.Add(c.ttl)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.users[user]; ok {
		c.order.Remove(el)
	}
	c.users[user] = c.order.PushBack(e)
	for c.order.Len() > c.max {
		old := c.order.Front()
		c.order.Remove(old)
		delete(c.users, old.Value.(*authEntry).user)
	}
}

// drop forgets user's entry (lower case).
func (c *authCache) drop(user string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.users[user]; ok {
		c.order.Remove(el)
		delete(c.users, user)
	}
}

// clear forgets everything.
func (c *authCache) clear() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.users)
	c.order.Init()
}

// len is the number of entries (tests and stats).
func (c *authCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
