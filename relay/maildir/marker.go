package maildir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// MarkerFolder is where Deliver keeps its delivered markers: one empty file
// per key in ROOT/MarkerFolder/<mailbox>/, for the mailbox ROOT/<mailbox>.
//
// The markers live outside the Maildir on purpose. Inside it no folder name
// is safe for every Dovecot layout: Maildir++ (the default) lists every
// folder starting with "." as a mailbox and skips the rest, LAYOUT=imapdir
// lists every folder not starting with ".", and LAYOUT=fs lists any
// folder (dovecot/core src/lib-storage/list/mailbox-list-maildir-iter.c,
// mailbox-list-fs-iter.c). Beside the mailboxes, in the root that holds
// one Maildir per address, a name starting with "." is no address (the
// relay refuses such mailbox names), so Dovecot, whose mail_location
// points at ROOT/%u, never opens it.
const MarkerFolder = ".nhsrelay-delivered"

// paths returns the absolute Maildir path and its marker folder.
func paths(dir string) (maildir, marks string, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", "", fmt.Errorf("maildir: %s: %w", dir, err)
	}
	root, box := filepath.Dir(abs), filepath.Base(abs)
	if root == abs || box == MarkerFolder {
		return "", "", fmt.Errorf("maildir: %s cannot be a mailbox folder", dir)
	}
	return abs, filepath.Join(root, MarkerFolder, box), nil
}

// Prune removes the delivered markers of every mailbox in root (the folder
// holding the Maildirs, ROOT above) last modified before cutoff, and
// returns how many it removed. It keeps going past errors and returns them
// joined.
//
// A marker is what stops a retry from delivering its key twice, so it must
// outlive every queue entry that could still deliver that key. A marker is
// written after its message was received, so a cutoff no later than the
// Received time of the oldest message still in the queue is always safe.
// The relay should call Prune about daily with
//
//	cutoff = min(oldest queued Received, now − GiveUpAfter) − 24h
//
// (the day absorbs clock differences between the relay and the file
// system, which stamps the markers).
func Prune(root string, cutoff time.Time) (removed int, err error) {
	top := filepath.Join(root, MarkerFolder)
	boxes, err := os.ReadDir(top)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("maildir: prune: %w", err)
	}
	var errs []error
	for _, b := range boxes {
		if !b.IsDir() {
			continue
		}
		dir := filepath.Join(top, b.Name())
		entries, err := os.ReadDir(dir)
		if err != nil {
			errs = append(errs, fmt.Errorf("maildir: prune %s: %w", b.Name(), err))
			continue
		}
		for _, e := range entries {
			if !e.Type().IsRegular() || !validKey(e.Name()) {
				continue
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("maildir: prune %s: %w", b.Name(), err))
				continue
			}
			if !fi.ModTime().Before(cutoff) {
				continue
			}
			// Not fsynced: a marker that comes back after a crash is only
			// removed again next time.
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("maildir: prune %s: %w", b.Name(), err))
				continue
			}
			removed++
		}
	}
	return removed, errors.Join(errs...)
}
