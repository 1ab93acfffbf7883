package smimepolicy

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Watch calls Reload when the key pairs in KeysDir or any of files (trust
// anchors, organisation CAs, CRLs) change, checking every interval until ctx
// ends: a renewed endpoint key or a new CRL takes effect without a SIGHUP.
// A change whose Reload fails is logged once and retried when the files
// change again; the keys and trust loaded before stay in force.
//
// With Config.Publisher, Watch first publishes the current endpoint keys
// (PublishKeys), and again after each reload: a key pair added to KeysDir
// becomes the endpoint's directory certificate within one interval.
func (p *Policy) Watch(ctx context.Context, interval time.Duration, files ...string) {
	if p.cfg.Publisher != nil {
		if _, err := p.PublishKeys(ctx, p.cfg.Publisher); err != nil {
			p.log.Error("S/MIME key rollover: publishing the current certificates failed", "err", err)
		}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	last := p.fingerprint(files)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fp := p.fingerprint(files)
		if fp == last {
			continue
		}
		last = fp
		if err := p.Reload(); err != nil {
			p.log.Error("S/MIME reload after a file change failed; keeping what was loaded", "err", err)
		}
		if p.cfg.Publisher != nil {
			if _, err := p.PublishKeys(ctx, p.cfg.Publisher); err != nil {
				p.log.Error("S/MIME key rollover: publishing the current certificates failed", "err", err)
			}
		}
	}
}

// fingerprint sums the names, sizes and modification times of the files in
// KeysDir and of files; contents are read by Reload, not here.
func (p *Policy) fingerprint(files []string) [sha256.Size]byte {
	h := sha256.New()
	entries, _ := os.ReadDir(p.cfg.KeysDir)
	names := make([]string, 0, len(entries)+len(files))
	for _, e := range entries {
		names = append(names, filepath.Join(p.cfg.KeysDir, e.Name()))
	}
	names = append(names, files...)
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(h, "%s\x00", n)
		if fi, err := os.Stat(n); err == nil {
			fmt.Fprintf(h, "%d\x00%d\x00", fi.Size(), fi.ModTime().UnixNano())
		}
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
