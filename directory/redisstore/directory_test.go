package redisstore_test

import (
	"errors"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"nhsrelay/directory"
	"nhsrelay/directory/redisstore"
	"nhsrelay/directory/redisstore/redistest"
)

// TestTwoNodes runs two directories on one Redis, as two cluster nodes do:
// what one writes, the other serves after Refresh.
func TestTwoNodes(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	open := func() *directory.Directory {
		d, err := directory.Open(t.Context(), directory.Config{
			Store: redisstore.New(srv.Client(t), "nhsrelay:", redisstore.Options{}), HashCost: bcrypt.MinCost})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return d
	}
	a, b := open(), open()
	ctx := t.Context()
	if _, err := a.ImportOrganisations(ctx, []directory.Organisation{{ODS: "A81001", Name: "THE DENSHAM SURGERY"}}); err != nil {
		t.Fatalf("import on a: %v", err)
	}
	e, err := a.AddEndpoint(ctx, directory.Endpoint{Address: "gp.a81001@nhs.example", ODS: "A81001"})
	if err != nil {
		t.Fatalf("AddEndpoint on a: %v", err)
	}
	if err := a.Attest(ctx, e.ID, "phoned the practice"); err != nil {
		t.Fatalf("Attest on a: %v", err)
	}
	if _, err := b.CheckRecipient(ctx, e.Address); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("b before Refresh = %v, want ErrNotFound (served from memory)", err)
	}
	if err := b.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if got, err := b.CheckRecipient(ctx, e.Address); err != nil || got.ID != e.ID {
		t.Fatalf("b after Refresh = %+v, %v; want the verified endpoint", got, err)
	}
}
