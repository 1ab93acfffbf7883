package directory_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

const cachedPass = "correct horse battery"

// cacheFixture is a directory with the login cache on, account gp1, and a
// counter of bcrypt comparisons.
func cacheFixture(t *testing.T, size int) (*directory.Directory, *directorytest.Clock, directory.Store, func() int64) {
	t.Helper()
	clock := directorytest.NewClock(t0)
	st := directorytest.NewStore(t)
	directorytest.Seed(t, st, directorytest.Verified("gp.a81001@nhs.example", mx))
	d, err := directory.Open(t.Context(), directory.Config{Store: st, Now: clock.Now, HashCost: bcrypt.MinCost,
		AuthCacheTTL: 5 * time.Minute, AuthCacheSize: size})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	n := directory.CountCompares(d)
	directorytest.Account(t, d, "gp1", cachedPass, "gp.a81001@nhs.example")
	return d, clock, st, n.Load
}

func mustAuth(t *testing.T, d *directory.Directory, user, pass string) {
	t.Helper()
	if _, err := d.Authenticate(t.Context(), user, pass); err != nil {
		t.Fatalf("Authenticate(%s): %v", user, err)
	}
}

func mustFailAuth(t *testing.T, d *directory.Directory, user, pass string) {
	t.Helper()
	if _, err := d.Authenticate(t.Context(), user, pass); !errors.Is(err, directory.ErrAuthFailed) {
		t.Fatalf("Authenticate(%s) = %v, want ErrAuthFailed", user, err)
	}
}

func TestAuthCacheSkipsBcryptAfterSuccess(t *testing.T) {
	t.Parallel()
	d, _, _, compares := cacheFixture(t, 0)
	mustAuth(t, d, "gp1", cachedPass)
	mustAuth(t, d, "GP1 ", cachedPass) // same account, case folded
	for range 5 {
		mustAuth(t, d, "gp1", cachedPass)
	}
	if n := compares(); n != 1 {
		t.Fatalf("%d bcrypt comparisons for 7 logins with the cache on, want 1", n)
	}
}

func TestAuthCacheNeverCachesFailures(t *testing.T) {
	t.Parallel()
	d, _, _, compares := cacheFixture(t, 0)
	for range 3 {
		mustFailAuth(t, d, "gp1", "wrong password!")
		mustFailAuth(t, d, "nobody", cachedPass)
	}
	if n := compares(); n != 6 {
		t.Fatalf("%d bcrypt comparisons for 6 failed logins, want 6 (failures are never cached)", n)
	}
	// With a good login cached, a wrong password still costs bcrypt and
	// still fails, and does not evict the good entry.
	mustAuth(t, d, "gp1", cachedPass)
	mustFailAuth(t, d, "gp1", "wrong password!")
	mustFailAuth(t, d, "gp1", cachedPass+"x")
	mustAuth(t, d, "gp1", cachedPass)
	if n := compares(); n != 9 {
		t.Fatalf("%d bcrypt comparisons, want 9 (1 success, 2 failures, then a hit)", n)
	}
	if directory.AuthCacheLen(d) != 1 {
		t.Fatalf("cache holds %d entries, want 1", directory.AuthCacheLen(d))
	}
}

func TestAuthCachePasswordChangeInvalidates(t *testing.T) {
	t.Parallel()
	d, _, _, compares := cacheFixture(t, 0)
	mustAuth(t, d, "gp1", cachedPass)
	a, err := d.Account(t.Context(), "gp1")
	if err != nil {
		t.Fatal(err)
	}
	a.PasswordHash, err = directory.HashPasswordCost("a brand new password", bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.PutAccount(admin(t), a); err != nil {
		t.Fatal(err)
	}
	if directory.AuthCacheLen(d) != 0 {
		t.Fatal("PutAccount left the old login cached")
	}
	mustFailAuth(t, d, "gp1", cachedPass)
	mustAuth(t, d, "gp1", "a brand new password")
	if n := compares(); n != 3 {
		t.Fatalf("%d bcrypt comparisons, want 3 (old password checked afresh after the change)", n)
	}
}

func TestAuthCacheDisableInvalidates(t *testing.T) {
	t.Parallel()
	d, _, _, _ := cacheFixture(t, 0)
	mustAuth(t, d, "gp1", cachedPass)
	a, err := d.Account(t.Context(), "gp1")
	if err != nil {
		t.Fatal(err)
	}
	a.Disabled = true
	if err := d.PutAccount(admin(t), a); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		mustFailAuth(t, d, "gp1", cachedPass)
	}
	a.Disabled = false
	if err := d.PutAccount(admin(t), a); err != nil {
		t.Fatal(err)
	}
	mustAuth(t, d, "gp1", cachedPass)
}

func TestAuthCacheTTL(t *testing.T) {
	t.Parallel()
	d, clock, _, compares := cacheFixture(t, 0)
	mustAuth(t, d, "gp1", cachedPass)
	clock.Advance(5*time.Minute - time.Second)
	mustAuth(t, d, "gp1", cachedPass)
	if n := compares(); n != 1 {
		t.Fatalf("%d bcrypt comparisons within the TTL, want 1", n)
	}
	clock.Advance(time.Second)
	mustAuth(t, d, "gp1", cachedPass)
	if n := compares(); n != 2 {
		t.Fatalf("%d bcrypt comparisons after the TTL, want 2 (expired entry checked afresh)", n)
	}
}

func TestAuthCacheBound(t *testing.T) {
	t.Parallel()
	d, _, _, compares := cacheFixture(t, 3)
	for i := range 5 {
		user := fmt.Sprintf("user%d", i)
		directorytest.Account(t, d, user, cachedPass, "gp.a81001@nhs.example")
		mustAuth(t, d, user, cachedPass)
	}
	if got := directory.AuthCacheLen(d); got != 3 {
		t.Fatalf("cache holds %d entries, want its bound 3", got)
	}
	before := compares()
	mustAuth(t, d, "user4", cachedPass) // newest: cached
	mustAuth(t, d, "user0", cachedPass) // oldest: evicted, checked afresh
	if n := compares() - before; n != 1 {
		t.Fatalf("%d bcrypt comparisons for the newest and an evicted user, want 1", n)
	}
}

func TestAuthCacheDisabled(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, directorytest.Verified("gp.a81001@nhs.example", mx)) // AuthCacheTTL 0
	n := directory.CountCompares(fx.d)
	directorytest.Account(t, fx.d, "gp1", cachedPass, "gp.a81001@nhs.example")
	for range 3 {
		mustAuth(t, fx.d, "gp1", cachedPass)
	}
	if n.Load() != 3 || directory.AuthCacheLen(fx.d) != 0 {
		t.Fatalf("%d comparisons, %d cached with the cache off, want 3 and 0", n.Load(), directory.AuthCacheLen(fx.d))
	}
	if _, err := directory.Open(t.Context(), directory.Config{Store: directorytest.NewStore(t), AuthCacheTTL: -time.Second}); err == nil {
		t.Fatal("Open accepted a negative AuthCacheTTL")
	}
}

// A password changed on another node reaches this one by Refresh, which
// forgets every cached login.
func TestAuthCacheRefreshClears(t *testing.T) {
	t.Parallel()
	d, clock, st, _ := cacheFixture(t, 0)
	mustAuth(t, d, "gp1", cachedPass)
	other, err := directory.Open(t.Context(), directory.Config{Store: st, Now: clock.Now, HashCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	a, err := other.Account(t.Context(), "gp1")
	if err != nil {
		t.Fatal(err)
	}
	a.PasswordHash, err = directory.HashPasswordCost("changed elsewhere", bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.PutAccount(admin(t), a); err != nil {
		t.Fatal(err)
	}
	if err := d.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if directory.AuthCacheLen(d) != 0 {
		t.Fatal("Refresh with a new revision left logins cached")
	}
	mustFailAuth(t, d, "gp1", cachedPass)
	mustAuth(t, d, "gp1", "changed elsewhere")
}
