package boltstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"nhsrelay/directory"
)

var (
	bucketOrgs       = []byte("organisations")
	bucketEndpoints  = []byte("endpoints")
	bucketAccounts   = []byte("accounts")
	bucketChallenges = []byte("challenges")
	bucketMeta       = []byte("meta")
	keyRevision      = []byte("revision")
)

// Store is a directory.Store in a bbolt file.
type Store struct {
	db *bolt.DB
}

var _ directory.Store = (*Store)(nil)

// Open opens (creating if needed) the bbolt file at path. It waits at most
// a second for another process's lock, then fails rather than hang.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketOrgs, bucketEndpoints, bucketAccounts, bucketChallenges, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the file.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("boltstore: close: %w", err)
	}
	return nil
}

// Load implements directory.Store.
func (s *Store) Load(ctx context.Context) (directory.Snapshot, error) {
	var snap directory.Snapshot
	if err := ctx.Err(); err != nil {
		return snap, fmt.Errorf("boltstore: load: %w", err)
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		snap.Revision = revision(tx)
		if err := loadAll(tx, bucketOrgs, &snap.Organisations); err != nil {
			return err
		}
		if err := loadAll(tx, bucketEndpoints, &snap.Endpoints); err != nil {
			return err
		}
		if err := loadAll(tx, bucketAccounts, &snap.Accounts); err != nil {
			return err
		}
		return loadAll(tx, bucketChallenges, &snap.Challenges)
	})
	if err != nil {
		return directory.Snapshot{}, fmt.Errorf("boltstore: load: %w", err)
	}
	return snap, nil
}

func loadAll[T any](tx *bolt.Tx, bucket []byte, out *[]T) error {
	return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
		var rec T
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("decode %s/%s: %w", bucket, k, err)
		}
		*out = append(*out, rec)
		return nil
	})
}

func revision(tx *bolt.Tx) uint64 {
	v := tx.Bucket(bucketMeta).Get(keyRevision)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// Revision implements directory.Store.
func (s *Store) Revision(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("boltstore: revision: %w", err)
	}
	var rev uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		rev = revision(tx)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("boltstore: revision: %w", err)
	}
	return rev, nil
}

// Apply implements directory.Store: one read-write transaction, fsynced by
// bbolt on Commit.
func (s *Store) Apply(ctx context.Context, b directory.Batch) error {
	if err := b.CheckKeys(); err != nil {
		return fmt.Errorf("boltstore: apply: %w", err)
	}
	if b.Empty() {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("boltstore: apply: %w", err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, o := range b.Organisations {
			if err := put(tx, bucketOrgs, o.ODS, o); err != nil {
				return err
			}
		}
		for _, e := range b.Endpoints {
			if err := put(tx, bucketEndpoints, e.ID, e); err != nil {
				return err
			}
		}
		for _, a := range b.Accounts {
			if err := put(tx, bucketAccounts, a.Username, a); err != nil {
				return err
			}
		}
		for _, c := range b.Challenges {
			if err := put(tx, bucketChallenges, c.EndpointID, c); err != nil {
				return err
			}
		}
		for _, id := range b.DeleteChallenges {
			if err := tx.Bucket(bucketChallenges).Delete([]byte(id)); err != nil {
				return fmt.Errorf("delete challenge %s: %w", id, err)
			}
		}
		for _, u := range b.DeleteAccounts {
			if err := tx.Bucket(bucketAccounts).Delete([]byte(u)); err != nil {
				return fmt.Errorf("delete account %s: %w", u, err)
			}
		}
		var rev [8]byte
		binary.BigEndian.PutUint64(rev[:], revision(tx)+1)
		return tx.Bucket(bucketMeta).Put(keyRevision, rev[:])
	})
	if err != nil {
		return fmt.Errorf("boltstore: apply: %w", err)
	}
	return nil
}

func put(tx *bolt.Tx, bucket []byte, key string, rec any) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", bucket, key, err)
	}
	if err := tx.Bucket(bucket).Put([]byte(key), v); err != nil {
		return fmt.Errorf("put %s/%s: %w", bucket, key, err)
	}
	return nil
}
