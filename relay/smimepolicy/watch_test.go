package smimepolicy_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"nhsrelay/certs"
	"nhsrelay/relay/smimepolicy"
)

// A CRL file or a key pair that changes on disk is reloaded without SIGHUP.
func TestWatchReloadsOnFileChange(t *testing.T) {
	t.Parallel()
	crl := filepath.Join(t.TempDir(), "crl.pem")
	if err := os.WriteFile(crl, []byte("v1"), 0o600); err != nil {
		t.Fatal(err)
	}
	var loads atomic.Int32
	f := newFixture(t, func(c *smimepolicy.Config) {
		trust := c.Trust
		c.LoadTrust = func() (*certs.Trust, error) { loads.Add(1); return trust, nil }
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go f.p.Watch(ctx, 5*time.Millisecond, crl)

	// Watch takes its first fingerprint in its own goroutine, so keep
	// changing the file (its size too, so a coarse mtime cannot hide it)
	// until a reload is seen.
	changeUntilReload := func(what string, change func(i int)) {
		t.Helper()
		want := loads.Load() + 1
		for i, deadline := 0, time.Now().Add(20*time.Second); loads.Load() < want; i++ {
			if time.Now().After(deadline) {
				t.Fatalf("no reload after %s (loads = %d)", what, loads.Load())
			}
			change(i)
			time.Sleep(5 * time.Millisecond)
		}
	}
	changeUntilReload("the CRL file changed", func(i int) {
		if err := os.WriteFile(crl, []byte(strings.Repeat("v", i+2)), 0o600); err != nil {
			t.Fatal(err)
		}
	})
	changeUntilReload("a key pair was renewed", func(int) { f.orgPair("A81001") })
}
