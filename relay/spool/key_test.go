package spool

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestCreateLoadKey(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "spool.key")
	if err := CreateKey(path); err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("key file mode = %04o, want 0600", perm)
	}
	key, err := LoadKey(path)
	if err != nil || len(key) != KeySize {
		t.Fatalf("LoadKey = %d bytes, %v; want %d, nil", len(key), err, KeySize)
	}
	// Never overwrite: the old key would make every spooled body unreadable.
	if err := CreateKey(path); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("CreateKey over existing = %v, want fs.ErrExist", err)
	}
	again, _ := LoadKey(path)
	if string(again) != string(key) {
		t.Fatal("key changed after refused CreateKey")
	}
	other := filepath.Join(t.TempDir(), "other.key")
	CreateKey(other)
	k2, _ := LoadKey(other)
	if string(k2) == string(key) {
		t.Fatal("two CreateKey calls made the same key")
	}
}

func TestLoadKeyRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // WriteFile's mode is masked by umask
			t.Fatal(err)
		}
		return p
	}
	good := make([]byte, KeySize)
	for _, tc := range []struct {
		name string
		path string
		perm bool // want ErrKeyPermissions
	}{
		{"group readable", write("g", good, 0o640), true},
		{"world readable", write("w", good, 0o604), true},
		{"group writable", write("gw", good, 0o620), true},
		{"short", write("s", good[:31], 0o600), false},
		{"long", write("l", append(good, 0), 0o600), false},
		{"empty", write("e", nil, 0o600), false},
		{"directory", dir, false},
		{"missing", filepath.Join(dir, "nope"), false},
	} {
		_, err := LoadKey(tc.path)
		if err == nil {
			t.Errorf("%s: LoadKey succeeded", tc.name)
			continue
		}
		if got := errors.Is(err, ErrKeyPermissions); got != tc.perm {
			t.Errorf("%s: LoadKey error = %v; ErrKeyPermissions = %v, want %v", tc.name, err, got, tc.perm)
		}
	}
}
