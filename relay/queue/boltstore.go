package queue

import (
	"context"
	"errors"
)

// BoltStore is the embedded Store, in one bbolt file.
type BoltStore struct{}

var _ Store = (*BoltStore)(nil)

// OpenBolt opens or creates the store at path.
func OpenBolt(path string) (*BoltStore, error) { return nil, errors.New("queue: not implemented yet") }

func (s *BoltStore) Add(ctx context.Context, m Message) error { return nil }
func (s *BoltStore) Get(ctx context.Context, id string) (Message, error) {
	return Message{}, ErrNotFound
}
func (s *BoltStore) Update(ctx context.Context, id string, fn func(*Message) error) error {
	return ErrNotFound
}
func (s *BoltStore) Delete(ctx context.Context, id string) error { return nil }
func (s *BoltStore) List(ctx context.Context) ([]Message, error) { return nil, nil }
func (s *BoltStore) Close() error                                { return nil }
