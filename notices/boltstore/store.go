// Package boltstore is the embedded notices.Store: one bbolt file in the
// data folder. Each record is JSON sealed with XChaCha20-Poly1305 under
// the spool key (patients' names, addresses and appointments are not kept
// in clear at rest), its bucket and key as associated data so a record
// cannot be moved to another key. bbolt fsyncs every commit; concurrent
// writes share a commit through Batch.
package boltstore

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/chacha20poly1305"

	"nhsrelay/notices"
)

var (
	bucketNotices     = []byte("notices")
	bucketCredentials = []byte("credentials")
	bucketRuns        = []byte("print_runs")
)

// batchDelay as relay/queue measured: 2 ms, not bbolt's 10 ms default.
const batchDelay = 2 * time.Millisecond

// Store is the bbolt notices.Store.
type Store struct {
	db   *bolt.DB
	aead cipher.AEAD
}

var _ notices.Store = (*Store)(nil)

// Open opens or creates the store at path (mode 0600), sealing records
// with key (32 bytes, the spool key).
func Open(path string, key []byte) (*Store, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("notices store: key: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("notices store: open %s: %w", path, err)
	}
	db.MaxBatchDelay = batchDelay
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketNotices, bucketCredentials, bucketRuns} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("notices store: open %s: %w", path, err)
	}
	return &Store{db: db, aead: aead}, nil
}

func (s *Store) Close() error { return s.db.Close() }

func (s *Store) seal(bucket, key []byte, v any) ([]byte, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plain, ad(bucket, key)), nil
}

func (s *Store) open(bucket, key, sealed []byte, v any) error {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return fmt.Errorf("notices store: record %s/%s is truncated", bucket, key)
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], ad(bucket, key))
	if err != nil {
		return fmt.Errorf("notices store: record %s/%s does not open with this key: %w", bucket, key, err)
	}
	return json.Unmarshal(plain, v)
}

func ad(bucket, key []byte) []byte { return append(append(append([]byte{}, bucket...), 0), key...) }

func (s *Store) Get(ctx context.Context, ref string) (notices.Notice, error) {
	var n notices.Notice
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketNotices).Get([]byte(ref))
		if v == nil {
			return fmt.Errorf("notice %q: %w", ref, notices.ErrNotFound)
		}
		return s.open(bucketNotices, []byte(ref), v, &n)
	})
	return n, err
}

func (s *Store) Create(ctx context.Context, n notices.Notice) error {
	if n.Reference == "" {
		return errors.New("notices store: create: empty reference")
	}
	k := []byte(n.Reference)
	v, err := s.seal(bucketNotices, k, n)
	if err != nil {
		return err
	}
	var exists bool
	err = s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNotices)
		exists = b.Get(k) != nil
		if exists {
			return nil
		}
		return b.Put(k, v)
	})
	if err != nil {
		return fmt.Errorf("notices store: create %q: %w", n.Reference, err)
	}
	if exists {
		return fmt.Errorf("notices store: create %q: %w", n.Reference, notices.ErrExists)
	}
	return nil
}

// Update runs fn in a batch; fn's error is returned without failing the
// others in the batch (bbolt retries a batch's other functions when one
// fails, so fn's own refusal is carried outside).
func (s *Store) Update(ctx context.Context, ref string, fn func(*notices.Notice) error) error {
	k := []byte(ref)
	var fnErr error
	err := s.db.Batch(func(tx *bolt.Tx) error {
		fnErr = nil
		b := tx.Bucket(bucketNotices)
		v := b.Get(k)
		if v == nil {
			fnErr = fmt.Errorf("notice %q: %w", ref, notices.ErrNotFound)
			return nil
		}
		var n notices.Notice
		if err := s.open(bucketNotices, k, v, &n); err != nil {
			return err
		}
		if fnErr = fn(&n); fnErr != nil {
			return nil
		}
		nv, err := s.seal(bucketNotices, k, n)
		if err != nil {
			return err
		}
		return b.Put(k, nv)
	})
	if err != nil {
		return fmt.Errorf("notices store: update %q: %w", ref, err)
	}
	return fnErr
}

func (s *Store) Each(ctx context.Context, fn func(notices.Notice) bool) error {
	return s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketNotices).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			var n notices.Notice
			if err := s.open(bucketNotices, k, v, &n); err != nil {
				return err
			}
			if !fn(n) {
				return nil
			}
		}
		return nil
	})
}

func (s *Store) put(bucket []byte, key string, v any) error {
	sealed, err := s.seal(bucket, []byte(key), v)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte(key), sealed) })
}

func all[T any](s *Store, bucket []byte) ([]T, error) {
	var out []T
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			var x T
			if err := s.open(bucket, k, v, &x); err != nil {
				return err
			}
			out = append(out, x)
			return nil
		})
	})
	return out, err
}

func (s *Store) PutCredential(ctx context.Context, c notices.Credential) error {
	if c.ID == "" {
		return errors.New("notices store: credential without ID")
	}
	return s.put(bucketCredentials, c.ID, c)
}

func (s *Store) Credentials(ctx context.Context) ([]notices.Credential, error) {
	return all[notices.Credential](s, bucketCredentials)
}

func (s *Store) PutRun(ctx context.Context, r notices.PrintRun) error {
	if r.ID == "" {
		return errors.New("notices store: print run without ID")
	}
	return s.put(bucketRuns, r.ID, r)
}

func (s *Store) Run(ctx context.Context, id string) (notices.PrintRun, error) {
	var r notices.PrintRun
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketRuns).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("print run %q: %w", id, notices.ErrNotFound)
		}
		return s.open(bucketRuns, []byte(id), v, &r)
	})
	return r, err
}

func (s *Store) Runs(ctx context.Context) ([]notices.PrintRun, error) {
	return all[notices.PrintRun](s, bucketRuns)
}
