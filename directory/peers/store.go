package peers

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// FileStore keeps the peers in one JSON file. The token is a secret: the
// file is 0600 and its folder is the data folder (0700).
type FileStore struct {
	Path string
}

// Load returns every peer; a missing file is no peers.
func (s FileStore) Load() ([]Peer, error) {
	data, err := os.ReadFile(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("peers: read %s: %w", s.Path, err)
	}
	var ps []Peer
	if err := json.Unmarshal(data, &ps); err != nil {
		return nil, fmt.Errorf("peers: %s: %w", s.Path, err)
	}
	return ps, nil
}

// Save replaces the file with ps, durably: temp file, fsync, rename,
// folder fsync (RFC-less, but the same duty as relay/spool's Write).
func (s FileStore) Save(ps []Peer) (err error) {
	sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
	data, err := json.MarshalIndent(ps, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(s.Path)
	f, err := os.CreateTemp(dir, filepath.Base(s.Path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("peers: save: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return fmt.Errorf("peers: save: %w", err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("peers: save: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("peers: save: fsync: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("peers: save: %w", err)
	}
	if err = os.Rename(f.Name(), s.Path); err != nil {
		return fmt.Errorf("peers: save: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("peers: save: fsync folder: %w", err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("peers: save: fsync folder: %w", err)
	}
	return nil
}
