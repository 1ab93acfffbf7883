package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// boundListeners is <data_dir>/listeners.json: the addresses serve's
// listeners actually bound, so a listen address with port 0 ("127.0.0.1:0",
// the kernel picks a free port) can be found by tests, scripts and the CLI.
// serve removes the file at start, writes it once every listener is bound
// and serving, and removes it on a clean stop; after a crash it is stale,
// which PID tells. A disabled listener is left out.
type boundListeners struct {
	PID         int    `json:"pid"`
	Submission  string `json:"submission,omitempty"`
	Submissions string `json:"submissions,omitempty"`
	MX          string `json:"mx,omitempty"`
	Admin       string `json:"admin,omitempty"`
	Notices     string `json:"notices,omitempty"`
	FHIR        string `json:"fhir,omitempty"`       // [federation] fhir_listen
	FaxUpload   string `json:"fax_upload,omitempty"` // serve_fax.go
}

// ListenersFile is where serve records its bound addresses.
func (c *config) ListenersFile() string { return filepath.Join(c.DataDir, "listeners.json") }

// set records addr under a listener mode's name ("submission",
// "submissions", "mx", "admin").
func (b *boundListeners) set(mode, addr string) {
	switch mode {
	case "submission":
		b.Submission = addr
	case "submissions":
		b.Submissions = addr
	case "mx":
		b.MX = addr
	case "admin":
		b.Admin = addr
	case "notices":
		b.Notices = addr
	case "fhir":
		b.FHIR = addr
	case "fax_upload":
		b.FaxUpload = addr
	}
}

// writeListeners replaces path atomically: a reader sees the old file or
// the whole new one, never a part (temp file, fsync, rename, fsync of the
// folder).
func writeListeners(path string, b boundListeners) error {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return fmt.Errorf("listeners file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".listeners-*.json")
	if err != nil {
		return fmt.Errorf("listeners file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	_, werr := tmp.Write(append(data, '\n'))
	if werr == nil {
		werr = tmp.Sync()
	}
	if err := errors.Join(werr, tmp.Close()); err != nil {
		return fmt.Errorf("listeners file: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("listeners file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("listeners file: %w", err)
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("listeners file: %w", err)
	}
	defer dir.Close()
	if err := dir.Sync(); err != nil {
		return fmt.Errorf("listeners file: sync folder: %w", err)
	}
	return nil
}

// readListeners reads a listeners.json that serve wrote.
func readListeners(path string) (boundListeners, error) {
	var b boundListeners
	data, err := os.ReadFile(path)
	if err != nil {
		return b, fmt.Errorf("listeners file: %w", err)
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return b, fmt.Errorf("listeners file %s: %w", path, err)
	}
	return b, nil
}

// removeListeners removes a stale or finished listeners.json.
func removeListeners(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("listeners file: %w", err)
	}
	return nil
}
