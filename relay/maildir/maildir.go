package maildir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"nhsrelay/internal/durable"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ErrBadKey means a key is empty, too long, or holds characters other than
// letters, digits and '-' (it becomes part of file names).
var ErrBadKey = errors.New("maildir: key must be 1-128 characters of A-Z a-z 0-9 -")

// QUIRK: the Maildir spec gives each file in tmp/ a unique time.unique.host
// name. Ours is tmp/nhsrelay_K<key>, fixed per key, so that a retry after a
// crash finds the delivery in progress by name; it is still unique because
// one key is delivered to one Maildir by one call at a time, and it has no
// '.' or ':', so no reader can take it for a delivered name.
const (
	keyMarker     = "_K"         // in a delivered file's name, before the key
	pendingPrefix = "nhsrelay_K" // tmp/<pendingPrefix><key>: a delivery in progress
	dirPerm       = 0o700
	filePerm      = 0o600
)

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

// Deliver writes r as one message into the Maildir at dir, unless a message
// with key was already delivered there, and returns once the message, its
// name, the folders leading to it and the key's delivered marker are on
// stable storage. It creates dir and its tmp, new and cur folders (mode
// 0700) if needed, and the marker folder beside dir (see MarkerFolder).
//
// Calls for the same dir and key must not run at the same time; the relay
// delivers one queue ID to one mailbox from one worker.
func Deliver(dir, key string, r io.Reader) error {
	return deliver(dir, key, r, hooks{})
}

// hooks lets tests observe fsyncs and stop a delivery at a named step, as a
// power cut would: nothing after it runs, no cleanup either.
type hooks struct {
	sync    func(dir string) error // nil: durable.SyncDir
	crashAt string
}

var errCrash = errors.New("maildir: simulated crash")

// Why a key is delivered at most once, and never lost.
//
// A delivery moves through these durable states, each made durable (fsync)
// before the next begins:
//
//	S0  nothing
//	S1  tmp/nhsrelay_K<key> (P) holds the whole message; P's name is durable
//	S2  P is also linked into new/ (Maildir spec: "link" tmp → new); new/ fsynced
//	S3  the marker <MarkerFolder>/<mailbox>/<key> (D) exists; its folder fsynced
//
// then P is removed (not fsynced: a P that reappears beside D is stale and
// is removed by the next call). A retry after a crash, or after an error,
// looks at what is there:
//
//   - D exists: delivered (S3). Never deliver again, whatever the user has
//     done to the message since: D is a separate file, so expunging the
//     message does not bring it back.
//   - P exists and has more than one name: the link into new/ happened (S2,
//     or a crash between its link and its fsync with the link surviving).
//     The message is in the mailbox, in new/, or in cur/ where a reader
//     renamed it (rename keeps the file, so the count does not change), or
//     also in another folder a reader hard-linked it to. Fsync new/ again,
//     write D: done, without a second copy. Because P's name was durable
//     before the link was made, S2 can never survive a crash without P.
//   - P exists with one name: S1, or a crash while P was written (a partial
//     P), or a link into new/ that did not survive. Nothing is visible in
//     the mailbox: remove P and deliver afresh from r.
//   - neither: S0, or a crash before P's name was durable. Nothing was
//     visible: deliver afresh.
//
// So a message is never in the mailbox twice, and Deliver returns nil only
// in S3, so the queue (which keeps the message until Deliver returns nil)
// never drops one that is not there. Two residual cases, both needing a
// crash in the few milliseconds between the fsync of new/ and that of D:
// if, before the relay retries, the user expunges that brand-new message
// (P is back to one name) or the relay stays down for over 36 hours (the
// Maildir spec lets a reader remove a tmp/ file not accessed for that
// long, and Dovecot does), the retry delivers it again. Both err towards a
// duplicate, never a loss.
func deliver(dir, key string, r io.Reader, h hooks) (err error) {
	if !validKey(key) {
		return fmt.Errorf("maildir: deliver %q: %w", key, ErrBadKey)
	}
	sync := h.sync
	if sync == nil {
		sync = durable.SyncDir
	}
	dir, marks, err := paths(dir)
	if err != nil {
		return err
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := durable.MkdirAll(filepath.Join(dir, sub), dirPerm, sync); err != nil {
			return fmt.Errorf("maildir: create %s: %w", sub, err)
		}
	}
	if err := durable.MkdirAll(marks, dirPerm, sync); err != nil {
		return fmt.Errorf("maildir: create marker folder: %w", err)
	}
	done := filepath.Join(marks, key)
	pending := filepath.Join(dir, "tmp", pendingPrefix+key)
	newDir := filepath.Join(dir, "new")

	st, err := state(done, pending)
	if err != nil {
		return err
	}
	switch st {
	case delivered:
		removeStale(pending)
		return nil
	case linked:
		if err := sync(newDir); err != nil {
			return fmt.Errorf("maildir: fsync new for %s: %w", key, err)
		}
		return finish(done, pending, marks, key, sync, h)
	case pendingOnly:
		if err := os.Remove(pending); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("maildir: remove unlinked pending %s: %w", key, err)
		}
	}

	// S0 → S1. O_EXCL: the name was just found free or removed.
	f, err := os.OpenFile(pending, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return fmt.Errorf("maildir: create pending %s: %w", key, err)
	}
	linkedNow := false
	defer func() {
		if f != nil {
			f.Close()
		}
		// Before the link nothing is visible: leave no pending file. After
		// it, P is what lets the retry finish without a second copy.
		if err != nil && !linkedNow && !errors.Is(err, errCrash) {
			os.Remove(pending)
		}
	}()
	n, err := io.Copy(f, r)
	if err != nil {
		return fmt.Errorf("maildir: write %s: %w", key, err)
	}
	if h.crashAt == "written" {
		return errCrash // P partial or unsynced: one name
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("maildir: fsync pending %s: %w", key, err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return fmt.Errorf("maildir: close pending %s: %w", key, err)
	}
	if err = sync(filepath.Join(dir, "tmp")); err != nil {
		return fmt.Errorf("maildir: fsync tmp for %s: %w", key, err)
	}
	if h.crashAt == "pending" {
		return errCrash // S1
	}

	// S1 → S2. Maildir spec: the delivered name is time.unique.host, and
	// linking (not renaming, not writing in place) into new/ means a reader
	// never sees a partial message. Link fails rather than replaces.
	base, err := uniqueName(key)
	if err != nil {
		return err
	}
	// Dovecot reads ",S=<size>" in the base name to skip a stat (its
	// maildir_copy_with_hardlinks and quota code use it).
	final := filepath.Join(newDir, base+",S="+strconv.FormatInt(n, 10))
	if err = os.Link(pending, final); err != nil {
		return fmt.Errorf("maildir: link into new for %s: %w", key, err)
	}
	linkedNow = true
	if h.crashAt == "linked" {
		return errCrash // link made, new/ not yet fsynced
	}
	if err = sync(newDir); err != nil {
		return fmt.Errorf("maildir: fsync new for %s: %w", key, err)
	}
	if h.crashAt == "visible" {
		return errCrash // S2
	}
	return finish(done, pending, marks, key, sync, h)
}

// finish takes a delivery from S2 to S3 and removes P.
func finish(done, pending, marks, key string, sync func(string) error, h hooks) error {
	d, err := os.OpenFile(done, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("maildir: create marker %s: %w", key, err)
	}
	if d != nil {
		if err := d.Close(); err != nil {
			return fmt.Errorf("maildir: close marker %s: %w", key, err)
		}
	}
	// The marker is empty: its name is all there is, and fsyncing the
	// folder makes both the name and the new inode durable.
	if err := sync(marks); err != nil {
		return fmt.Errorf("maildir: fsync marker folder for %s: %w", key, err)
	}
	if h.crashAt == "marked" {
		return errCrash // S3, P not yet removed
	}
	removeStale(pending)
	return nil
}

// removeStale removes a pending file whose delivery is complete. A failure
// only leaves a second name for a delivered message in tmp/, which the next
// call or the reader's tmp/ cleanup removes.
func removeStale(pending string) { _ = os.Remove(pending) }

type deliveryState int

const (
	none        deliveryState = iota // S0
	pendingOnly                      // S1: P with one name
	linked                           // S2: P also in the mailbox
	delivered                        // S3
)

func state(done, pending string) (deliveryState, error) {
	if _, err := os.Lstat(done); err == nil {
		return delivered, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return none, fmt.Errorf("maildir: check marker: %w", err)
	}
	fi, err := os.Lstat(pending)
	if errors.Is(err, fs.ErrNotExist) {
		return none, nil
	}
	if err != nil {
		return none, fmt.Errorf("maildir: check pending: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return none, fmt.Errorf("maildir: pending %s is not a regular file", fi.Name())
	}
	n, ok := linkCount(fi)
	if !ok {
		return none, fmt.Errorf("maildir: pending %s: link count unknown on this system", fi.Name())
	}
	if n > 1 {
		return linked, nil
	}
	return pendingOnly, nil
}

// Has reports whether a message with key has been delivered to the Maildir
// at dir: its marker exists, or its link into new/ was made by a delivery
// that has not yet written the marker. It stays true after the user moves
// or expunges the message, until Prune removes the marker.
func Has(dir, key string) (bool, error) {
	if !validKey(key) {
		return false, fmt.Errorf("maildir: has %q: %w", key, ErrBadKey)
	}
	dir, marks, err := paths(dir)
	if err != nil {
		return false, err
	}
	st, err := state(filepath.Join(marks, key), filepath.Join(dir, "tmp", pendingPrefix+key))
	return st == delivered || st == linked, err
}

// uniqueName builds "time.unique.host" (Maildir spec, "What is a unique
// name?"): seconds, then M<microseconds>P<pid>R<random>_K<key>, then the
// host name with '/' and ':' written as \057 and \072 as the spec asks
// (and ',' as \054, since Dovecot reads ",S=" after it).
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
