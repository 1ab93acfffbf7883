//go:build linux

// Package audittest has helpers for fault tests of the packages that must
// not act without their audit trail or their spool: a small, real
// filesystem that can be filled up and freed again, so that ENOSPC comes
// from the kernel, not from a fake.
package audittest

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// SmallDisk mounts a tmpfs of size bytes on a new folder and returns it;
// it is unmounted when the test ends. It needs root (the test suite runs
// as root, as make test does); elsewhere the test fails, never skips.
func SmallDisk(t testing.TB, size int) string {
	t.Helper()
	dir := t.TempDir()
	MountSmall(t, dir, size)
	return dir
}

// MountSmall mounts a tmpfs of size bytes on the existing folder dir
// (hiding what it held) until the test ends.
func MountSmall(t testing.TB, dir string, size int) {
	t.Helper()
	// The system call, not mount(8): a fork would hold copies of the
	// test process's descriptors, and with them its file locks, until exec.
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.Itoa(size)+",mode=0700"); err != nil {
		t.Fatalf("mount tmpfs on %s (the fault tests need root): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

// Fill writes a filler file in dir until the filesystem is full and
// returns a function that removes it (space comes back).
func Fill(t testing.TB, dir string) (free func()) {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("create filler: %v", err)
	}
	buf := make([]byte, 4096)
	for {
		if _, err = f.Write(buf); err != nil {
			break
		}
	}
	f.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling %s: %v, want ENOSPC", dir, err)
	}
	return func() {
		if err := os.Remove(path); err != nil {
			t.Fatalf("free %s: %v", dir, err)
		}
	}
}
