package crashtest

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// countMaildir counts, per Delivered-To address (the token), the messages
// in new/ and cur/ of every Maildir under root. The relay's final delivery
// writes Return-Path and Delivered-To first (RFC 5321 §4.4; Delivered-To
// as Postfix's local(8) writes it, RFC 9228).
func countMaildir(t *testing.T, root string) map[string]int {
	t.Helper()
	got := make(map[string]int)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && path == root {
				return filepath.SkipDir // nothing delivered at all
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		sub := filepath.Base(filepath.Dir(path))
		if sub != "new" && sub != "cur" {
			return nil
		}
		to, err := deliveredTo(path)
		if err != nil {
			return err
		}
		if to == "" {
			t.Errorf("%s: no Delivered-To header", path)
			return nil
		}
		got[to]++
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return got
}

// deliveredTo returns the first Delivered-To field of the message's header.
func deliveredTo(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			break // end of the header section
		}
		if name, val, ok := strings.Cut(line, ":"); ok && strings.EqualFold(name, "Delivered-To") {
			return strings.ToLower(strings.Trim(strings.TrimSpace(val), "<>")), nil
		}
	}
	return "", sc.Err()
}
