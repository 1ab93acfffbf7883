package main

import (
	"os"
	"syscall"
	"testing"
)

// ownerOf is the numeric owner of path.
func ownerOf(t *testing.T, path string) uint32 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Uid
}
