package faxbridge

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Buckets of the bridge's state file. Nothing here is clinical content:
// numbers, counts, times, page fingerprints, outcomes.
var (
	bucketFaxes   = []byte("faxes")   // ref → Record
	bucketPages   = []byte("pages")   // called + "/" + page hash → pageSeen
	bucketDead    = []byte("dead")    // ref → DeadLetter (the fax itself is in the encrypted spool)
	bucketServers = []byte("servers") // name → Server
)

// Outcomes of a received fax.
const (
	OutcomeDelivered  = "delivered"   // submitted to the relay
	OutcomeDeadLetter = "dead-letter" // kept for an administrator to re-route
	OutcomeDuplicate  = "duplicate"   // every page repeats an earlier fax: not delivered again
	OutcomeFailed     = "failed"      // the fax server reports a failed reception, no image
	OutcomeRerouted   = "rerouted"    // a dead letter an administrator sent on
)

// Record is what the bridge remembers of each fax, for the report and
// for finding resends.
type Record struct {
	Ref        string    `json:"ref"`
	Source     string    `json:"source"` // t37, hylafax, spool, http
	Received   time.Time `json:"received"`
	Calling    string    `json:"calling,omitempty"`
	CSI        string    `json:"csi,omitempty"`
	Called     string    `json:"called,omitempty"`
	Endpoint   string    `json:"endpoint,omitempty"`
	ODS        string    `json:"ods,omitempty"`
	Pages      int       `json:"pages"`
	Outcome    string    `json:"outcome"`
	QueueID    string    `json:"queue_id,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	RepeatOf   string    `json:"repeat_of,omitempty"`
	PageHashes []string  `json:"page_hashes,omitempty"`
}

type pageSeen struct {
	Ref  string    `json:"ref"`
	Page int       `json:"page"`
	At   time.Time `json:"at"`
}

// state is the bridge's bbolt file.
type state struct{ db *bolt.DB }

func openState(path string) (*state, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("faxbridge: state: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("faxbridge: open state %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketFaxes, bucketPages, bucketDead, bucketServers} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("faxbridge: state %s: %w", path, err)
	}
	return &state{db: db}, nil
}

func (s *state) close() error { return s.db.Close() }

// put stores v as JSON under key in bucket b.
func put(tx *bolt.Tx, b []byte, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Bucket(b).Put([]byte(key), data)
}

// get reads key from bucket b into v; found is false if absent.
func get(tx *bolt.Tx, b []byte, key string, v any) (found bool, err error) {
	data := tx.Bucket(b).Get([]byte(key))
	if data == nil {
		return false, nil
	}
	return true, json.Unmarshal(data, v)
}

// record stores r and, for a delivered fax, its pages' fingerprints.
func (s *state) record(r Record) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := put(tx, bucketFaxes, r.Ref, r); err != nil {
			return err
		}
		if r.Outcome != OutcomeDelivered && r.Outcome != OutcomeRerouted {
			return nil
		}
		for i, h := range r.PageHashes {
			if h != "" {
				if err := put(tx, bucketPages, r.Called+"/"+h, pageSeen{Ref: r.Ref, Page: i + 1, At: r.Received}); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// seen returns, per page hash, the earlier delivered page with the same
// fingerprint to the same number within window ("" ref where none).
func (s *state) seen(called string, hashes []string, since time.Time) ([]pageSeen, error) {
	out := make([]pageSeen, len(hashes))
	err := s.db.View(func(tx *bolt.Tx) error {
		for i, h := range hashes {
			if h == "" {
				continue
			}
			var p pageSeen
			if ok, err := get(tx, bucketPages, called+"/"+h, &p); err != nil {
				return err
			} else if ok && p.At.After(since) {
				out[i] = p
			}
		}
		return nil
	})
	return out, err
}

// find returns the record of ref, if there is one.
func (s *state) find(ref string) (r Record, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		ok, err = get(tx, bucketFaxes, ref, &r)
		return err
	})
	return r, ok, err
}

// records calls fn for every fax record.
func (s *state) records(fn func(Record)) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFaxes).ForEach(func(_, v []byte) error {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return nil // a record we cannot read is skipped, not fatal for a report
			}
			fn(r)
			return nil
		})
	})
}
