package faxbridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Sidecar is the optional JSON beside a fax in the spool folder
// (fax.tif + fax.json). A sidecar alone, with Failed set, records a
// reception that failed.
type Sidecar struct {
	Called     string `json:"called,omitempty"`
	Calling    string `json:"calling,omitempty"`
	CallerName string `json:"caller_name,omitempty"`
	CSI        string `json:"csi,omitempty"`
	Quality    string `json:"quality,omitempty"`
	Failed     string `json:"failed,omitempty"`
	Source     string `json:"source,omitempty"` // "hylafax" when the hook wrote it; default "spool"
	// Received is when the fax arrived (RFC 3339); default: when picked up.
	Received time.Time `json:"received,omitzero"`
}

// SpoolFolder watches a folder for faxes that a fax server or scanner
// drops: name.tif (or .tiff, .pdf) with an optional name.json sidecar,
// written elsewhere (or under a name starting with ".", or ending in
// .tmp, as internal/durable.WriteFile writes) and renamed in.
//
// Pickup is a rename into .work/, so two watchers never take one file;
// the new name carries the fax's reference, by which the bridge and the
// relay are idempotent, so a fax a crash leaves in .work/ is handed over
// again at start-up and is neither lost nor received twice. Once stored
// it moves to done/ (delivered, duplicate, failed reception) or failed/
// (dead letter). A fax the bridge cannot store goes back, to be tried
// again at the next rescan.
type SpoolFolder struct {
	Bridge *Bridge
	Dir    string
	// Rescan is the safety-net scan interval (default 30s); fsnotify
	// events trigger a scan at once.
	Rescan time.Duration
	// Settle is how long a file must be unchanged before pickup, for
	// writers that do not rename into place (default 2s).
	Settle time.Duration
}

const (
	workDir   = ".work"
	doneDir   = "done"
	failedDir = "failed"
)

func (s *SpoolFolder) defaults() {
	if s.Rescan <= 0 {
		s.Rescan = 30 * time.Second
	}
	if s.Settle <= 0 {
		s.Settle = 2 * time.Second
	}
}

// Run watches until ctx ends.
func (s *SpoolFolder) Run(ctx context.Context) error {
	s.defaults()
	for _, d := range []string{s.Dir, filepath.Join(s.Dir, workDir), filepath.Join(s.Dir, doneDir), filepath.Join(s.Dir, failedDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("faxbridge: spool folder: %w", err)
		}
	}
	if err := s.recover(ctx); err != nil {
		return err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("faxbridge: spool folder watch: %w", err)
	}
	defer w.Close()
	if err := w.Add(s.Dir); err != nil {
		return fmt.Errorf("faxbridge: spool folder watch %s: %w", s.Dir, err)
	}
	tick := time.NewTicker(s.Rescan)
	defer tick.Stop()
	settle := time.NewTimer(0)
	defer settle.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.Events:
		case err := <-w.Errors:
			s.Bridge.log.Warn("spool folder watch error; relying on rescans", "dir", s.Dir, "err", err)
		case <-tick.C:
		case <-settle.C:
		}
		if wait := s.Scan(ctx); wait > 0 {
			settle.Reset(wait)
		}
	}
}

// recover finishes what a crash left in .work/: each fax there was
// given its reference at pickup ("<ref>~<name>"), and the bridge is
// idempotent by reference, so handing it over again neither loses nor
// doubles it.
func (s *SpoolFolder) recover(ctx context.Context) error {
	entries, err := os.ReadDir(filepath.Join(s.Dir, workDir))
	if err != nil {
		return fmt.Errorf("faxbridge: spool folder recover: %w", err)
	}
	groups := map[string][]string{} // ref → names without the prefix
	var refs []string
	for _, e := range entries {
		ref, name, ok := strings.Cut(e.Name(), "~")
		if !ok || !validRef(ref) {
			// not ours: put it back for a normal pickup
			if err := os.Rename(filepath.Join(s.Dir, workDir, e.Name()), filepath.Join(s.Dir, e.Name())); err != nil {
				s.Bridge.log.Error("spool folder: could not put back a file left in .work; it is not picked up", "dir", s.Dir, "file", e.Name(), "err", err)
			}
			continue
		}
		if groups[ref] == nil {
			refs = append(refs, ref)
		}
		groups[ref] = append(groups[ref], name)
	}
	for _, ref := range refs {
		names := groups[ref]
		sort.Slice(names, func(i, j int) bool { return faxExt(names[i]) && !faxExt(names[j]) })
		s.Bridge.log.Warn("spool folder: finishing a pickup interrupted by a restart", "dir", s.Dir, "ref", ref, "file", names[0])
		s.process(ctx, ref, names)
	}
	return nil
}

// faxExt reports whether name is a fax file the folder takes.
func faxExt(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".tif", ".tiff", ".pdf":
		return true
	}
	return false
}

// Scan takes every settled fax in the folder. It returns how long until a
// file not yet settled will be (0 if none).
func (s *SpoolFolder) Scan(ctx context.Context) time.Duration {
	s.defaults()
	entries, err := os.ReadDir(s.Dir)
	if err != nil {
		s.Bridge.log.Error("spool folder unreadable", "dir", s.Dir, "err", err)
		return 0
	}
	names := map[string]bool{}
	for _, e := range entries {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			names[e.Name()] = true
		}
	}
	var wait time.Duration
	for _, e := range entries {
		name := e.Name()
		if !names[name] || ctx.Err() != nil {
			continue
		}
		base, ext := strings.TrimSuffix(name, filepath.Ext(name)), strings.ToLower(filepath.Ext(name))
		switch {
		case faxExt(name):
		case ext == ".json" && !hasFax(names, base):
			// a sidecar alone: a failed reception
		default:
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		if age := time.Since(info.ModTime()); age < s.Settle {
			if d := s.Settle - age; wait == 0 || d < wait {
				wait = d
			}
			continue
		}
		s.take(ctx, name, base)
	}
	return wait
}

func hasFax(names map[string]bool, base string) bool {
	for n := range names {
		if faxExt(n) && strings.TrimSuffix(n, filepath.Ext(n)) == base {
			return true
		}
	}
	return false
}

// take picks up one fax (and its sidecar): a rename into .work/ under
// the reference the bridge will know it by.
func (s *SpoolFolder) take(ctx context.Context, name, base string) {
	ref := s.Bridge.NewRef()
	files := []string{name}
	if sc := base + ".json"; sc != name {
		if _, err := os.Stat(filepath.Join(s.Dir, sc)); err == nil {
			files = append(files, sc)
		}
	}
	// The sidecar first, then the fax: a crash between leaves the sidecar
	// in .work/ and the fax in the folder, and recover reunites them.
	for i := len(files) - 1; i >= 0; i-- {
		if err := os.Rename(filepath.Join(s.Dir, files[i]), s.work(ref, files[i])); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				s.Bridge.log.Error("spool folder pickup failed", "dir", s.Dir, "file", files[i], "err", err)
			}
			s.putBack(ref, files[i+1:])
			return
		}
	}
	s.process(ctx, ref, files)
}

func (s *SpoolFolder) work(ref, name string) string {
	return filepath.Join(s.Dir, workDir, ref+"~"+name)
}

// process hands a picked-up fax to the bridge. files[0] is the fax (or a
// sidecar alone), files[1] its sidecar.
func (s *SpoolFolder) process(ctx context.Context, ref string, files []string) {
	name := files[0]
	base := strings.TrimSuffix(name, filepath.Ext(name))
	log := s.Bridge.log.With("dir", s.Dir, "file", name, "ref", ref)
	if len(files) == 1 {
		// A crash between the two renames of take parts a sidecar (moved
		// first) from its fax: fetch the fax now.
		for _, ext := range []string{".tif", ".tiff", ".pdf", ".TIF", ".TIFF", ".PDF"} {
			if faxExt(name) {
				break
			}
			if os.Rename(filepath.Join(s.Dir, base+ext), s.work(ref, base+ext)) == nil {
				files = []string{base + ext, name}
				name = files[0]
				log = log.With("file", name)
			}
		}
	}
	in := Inbound{Ref: ref, Source: "spool"}
	var err error
	if faxExt(name) {
		in.Data, err = os.ReadFile(s.work(ref, name))
		in.PDF = strings.EqualFold(filepath.Ext(name), ".pdf")
	}
	if err != nil {
		log.Error("spool folder: cannot read the picked-up fax; putting it back", "err", err)
		s.putBack(ref, files)
		return
	}
	if len(files) > 1 || !faxExt(name) {
		var sc Sidecar
		raw, rerr := os.ReadFile(s.work(ref, base+".json"))
		if rerr == nil {
			rerr = json.Unmarshal(raw, &sc)
		}
		if rerr != nil {
			// A fax with a broken sidecar is still a fax: without the
			// numbers it becomes a dead letter that says why.
			sc = Sidecar{Called: "(sidecar " + base + ".json unreadable: " + oneLine(rerr.Error()) + ")"}
		}
		in.Called, in.Calling, in.CallerName, in.CSI = sc.Called, sc.Calling, sc.CallerName, sc.CSI
		in.Quality, in.Failed, in.Received = sc.Quality, sc.Failed, sc.Received
		if sc.Source != "" {
			in.Source = sc.Source
		}
		if !faxExt(name) && sc.Failed == "" {
			in.Failed = "a sidecar without a fax file"
		}
	}
	in.Stored = func(o Outcome) {
		dst := doneDir
		if o.Outcome == OutcomeDeadLetter {
			dst = failedDir
		}
		for _, f := range files {
			if err := os.Rename(s.work(ref, f), filepath.Join(s.Dir, dst, ref+"-"+f)); err != nil {
				log.Error("spool folder: stored but not moved out of .work", "err", err)
			}
		}
	}
	out, err := s.Bridge.Receive(ctx, in)
	if err != nil {
		log.Error("spool folder: the fax could not be stored; left in place to try again", "err", err)
		s.putBack(ref, files)
		return
	}
	log.Info("spool folder: fax taken", "outcome", out.Outcome)
}

func (s *SpoolFolder) putBack(ref string, files []string) {
	for _, f := range files {
		if err := os.Rename(s.work(ref, f), filepath.Join(s.Dir, f)); err != nil {
			s.Bridge.log.Error("spool folder: could not put back", "file", f, "err", err)
		}
	}
}
