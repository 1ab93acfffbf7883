package maildir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ErrBadKey means a key is empty, too long, or holds characters other than
// letters, digits and '-' (it becomes part of a file name, after "_K").
var ErrBadKey = errors.New("maildir: key must be 1-128 characters of A-Z a-z 0-9 -")

const keyMarker = "_K"

func validKey(key string) bool {
	if key == "" || len(key) > 128 {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Deliver writes r as one message into the Maildir at dir (creating dir,
// tmp, new and cur with mode 0700 if needed), unless a message with key is
// already there. It returns once the message and its name are on stable
// storage.
func Deliver(dir, key string, r io.Reader) (err error) {
	if !validKey(key) {
		return fmt.Errorf("maildir: deliver %q: %w", key, ErrBadKey)
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return fmt.Errorf("maildir: create %s: %w", sub, err)
		}
	}
	if found, err := Has(dir, key); err != nil || found {
		return err
	}
	base, err := uniqueName(key)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "tmp", base)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("maildir: create %s: %w", tmp, err)
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		os.Remove(tmp) // after the link, or on failure: tmp/ keeps nothing
	}()
	n, err := io.Copy(f, r)
	if err != nil {
		return fmt.Errorf("maildir: write %s: %w", key, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("maildir: fsync %s: %w", tmp, err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return fmt.Errorf("maildir: close %s: %w", tmp, err)
	}
	// Dovecot reads ",S=<size>" in the base name to skip a stat (its
	// maildir_copy_with_hardlinks and quota code use it).
	final := filepath.Join(dir, "new", base+",S="+strconv.FormatInt(n, 10))
	// The Maildir spec links tmp into new so a name never points at a
	// partial file; link fails rather than replaces if the name exists.
	if err := os.Link(tmp, final); err != nil {
		return fmt.Errorf("maildir: link into new: %w", err)
	}
	if err := syncDir(filepath.Join(dir, "new")); err != nil {
		return fmt.Errorf("maildir: fsync new for %s: %w", key, err)
	}
	return nil
}

// Has reports whether a message delivered with key is in new/ or cur/
// (where a reader moves it, adding ":2,<flags>").
func Has(dir, key string) (bool, error) {
	if !validKey(key) {
		return false, fmt.Errorf("maildir: has %q: %w", key, ErrBadKey)
	}
	needle := keyMarker + key + "."
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("maildir: read %s: %w", sub, err)
		}
		for _, e := range entries {
			if strings.Contains(e.Name(), needle) {
				return true, nil
			}
		}
	}
	return false, nil
}

// uniqueName builds "time.unique.host" (Maildir spec): seconds, then
// M<microseconds>P<pid>R<random>_K<key>, then the host name with '/' and
// ':' escaped as the spec asks.
func uniqueName(key string) (string, error) {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", fmt.Errorf("maildir: random: %w", err)
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	host = strings.NewReplacer("/", `\057`, ":", `\072`, ",", `\054`).Replace(host)
	now := time.Now()
	return fmt.Sprintf("%d.M%dP%dR%s%s%s.%s", now.Unix(), now.Nanosecond()/1000, os.Getpid(),
		hex.EncodeToString(rnd[:]), keyMarker, key, host), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}
