package certs

import (
	"crypto/sha256"
	"crypto/x509"
	"sync"
	"time"
)

// maxVerifiedChains bounds a Trust's cache of verified chains; when full it
// starts again (the relay's working set is its endpoints' certificates).
const maxVerifiedChains = 4096

// chainCache remembers what x509 chain building found for a certificate
// and its offered intermediates against one anchor pool, so that a
// recipient's certificate is not re-verified (signature checks, chain
// building) for every message. Only successes are kept, and only for the
// window in which every certificate of every chain found is within its
// validity; outside it the chain is built again. Revocation is not cached:
// validate checks the CRLs on every call. A Trust is replaced, not changed,
// when anchors or CRLs are reloaded, so a new Trust starts with an empty
// cache; entries are also keyed by the pool, so Roots and OrgCAs never
// share one.
type chainCache struct {
	mu sync.Mutex
	m  map[chainKey]verifiedChains
}

type chainKey struct {
	roots *x509.CertPool
	cert  [sha256.Size]byte
	inter [sha256.Size]byte // of the intermediates offered, in order
}

type verifiedChains struct {
	chains            [][]*x509.Certificate
	notBefore, expiry time.Time // every certificate in chains is valid in between
}

func newChainKey(cert *x509.Certificate, intermediates []*x509.Certificate, roots *x509.CertPool) chainKey {
	k := chainKey{roots: roots, cert: sha256.Sum256(cert.Raw)}
	h := sha256.New()
	for _, c := range intermediates {
		sum := sha256.Sum256(c.Raw) // fixed length: no ambiguity between lists
		h.Write(sum[:])
	}
	h.Sum(k.inter[:0])
	return k
}

func (c *chainCache) get(k chainKey, now time.Time) ([][]*x509.Certificate, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	if !ok || now.Before(v.notBefore) || now.After(v.expiry) {
		return nil, false
	}
	return v.chains, true
}

func (c *chainCache) put(k chainKey, chains [][]*x509.Certificate) {
	v := verifiedChains{chains: chains}
	for i, chain := range chains {
		for j, cert := range chain {
			if i == 0 && j == 0 || cert.NotBefore.After(v.notBefore) {
				v.notBefore = cert.NotBefore
			}
			if i == 0 && j == 0 || cert.NotAfter.Before(v.expiry) {
				v.expiry = cert.NotAfter
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxVerifiedChains {
		c.m = map[chainKey]verifiedChains{}
	}
	c.m[k] = v
}

func (c *chainCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
