package timeline

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketEvents = []byte("events") // seq → Event JSON
	bucketKeys   = []byte("keys")   // key 0x00 seq → nil
	bucketMeta   = []byte("meta")
	keyPosition  = []byte("position")
)

// BoltStore is the embedded Store: one bbolt file.
type BoltStore struct{ db *bolt.DB }

var _ Store = (*BoltStore)(nil)

// OpenBolt opens or creates (0600) the index at path.
func OpenBolt(path string) (*BoltStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("timeline: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketEvents, bucketKeys, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("timeline: open %s: %w", path, err)
	}
	return &BoltStore{db: db}, nil
}

func seqKey(seq uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	return b[:]
}

func (s *BoltStore) Add(ctx context.Context, entries []Indexed, pos Position) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := json.Marshal(pos)
	if err != nil {
		return err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		evs, keys := tx.Bucket(bucketEvents), tx.Bucket(bucketKeys)
		for _, in := range entries {
			sk := seqKey(in.Event.Seq)
			if evs.Get(sk) != nil {
				continue
			}
			data, err := json.Marshal(in.Event)
			if err != nil {
				return err
			}
			if err := evs.Put(sk, data); err != nil {
				return err
			}
			for _, k := range in.Keys {
				if err := keys.Put(append(append([]byte(k), 0), sk...), nil); err != nil {
					return err
				}
			}
		}
		return tx.Bucket(bucketMeta).Put(keyPosition, p)
	})
	if err != nil {
		return fmt.Errorf("timeline: add: %w", err)
	}
	return nil
}

func (s *BoltStore) Find(ctx context.Context, key string, since time.Time) ([]Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []Event
	prefix := append([]byte(key), 0)
	err := s.db.View(func(tx *bolt.Tx) error {
		evs := tx.Bucket(bucketEvents)
		c := tx.Bucket(bucketKeys).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			data := evs.Get(k[len(prefix):])
			if data == nil {
				continue
			}
			var e Event
			if err := json.Unmarshal(data, &e); err != nil {
				return err
			}
			if !since.IsZero() && e.Time.Before(since) {
				continue
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("timeline: find %q: %w", key, err)
	}
	return out, nil
}

func (s *BoltStore) Position(ctx context.Context) (Position, error) {
	var p Position
	err := s.db.View(func(tx *bolt.Tx) error {
		if data := tx.Bucket(bucketMeta).Get(keyPosition); data != nil {
			return json.Unmarshal(data, &p)
		}
		return nil
	})
	if err != nil {
		return Position{}, fmt.Errorf("timeline: position: %w", err)
	}
	return p, nil
}

func (s *BoltStore) Reset(ctx context.Context) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketEvents, bucketKeys, bucketMeta} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("timeline: reset: %w", err)
	}
	return nil
}

func (s *BoltStore) Close() error { return s.db.Close() }
