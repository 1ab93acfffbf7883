package directory_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

// TestConcurrentReadsAndWrites runs RCPT checks while endpoints are added,
// suspended and verified; -race checks the locking, and every answer must be
// one of the states the endpoint passes through.
func TestConcurrentReadsAndWrites(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, directorytest.Verified("gp.a81001@nhs.example", mx))
	ctx := admin(t)
	e := mustLookup(t, fx.d, "gp.a81001@nhs.example")
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 4 {
		wg.Go(func() {
			for range 200 {
				_, err := fx.d.CheckRecipient(ctx, "gp.a81001@nhs.example")
				var nv *directory.NotVerifiedError
				if err != nil && !(errors.As(err, &nv) && nv.Reason == "suspended: checking") {
					errs <- err
					return
				}
				fx.d.Endpoints(ctx, directory.Filter{Name: "test"})
			}
		})
	}
	wg.Go(func() {
		for i := range 20 {
			if err := fx.d.Suspend(ctx, e.ID, "checking"); err != nil {
				errs <- err
				return
			}
			if err := fx.d.Attest(ctx, e.ID, "checked"); err != nil {
				errs <- err
				return
			}
			if _, err := fx.d.AddEndpoint(ctx, directory.Endpoint{Address: fmt.Sprintf("n%d@nhs.example", i), ODS: "A81001"}); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := fx.d.Stats(); st.Endpoints[directory.StatusPending] != 20 || st.Endpoints[directory.StatusVerified] != 1 || st.Organisations != 1 {
		t.Fatalf("Stats() = %+v after 20 adds, want 20 pending, 1 verified, 1 organisation", st)
	}
}
