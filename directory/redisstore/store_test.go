package redisstore_test

import (
	"testing"

	"nhsrelay/directory"
	"nhsrelay/directory/redisstore"
	"nhsrelay/directory/redisstore/redistest"
	"nhsrelay/directory/storetest"
)

func TestContract(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t) // stopped by t.Cleanup
	storetest.Run(t, func(t *testing.T) directory.Store {
		return redisstore.New(rdb, "test:"+t.Name()+":", redisstore.Options{}) // fresh prefix: an empty store
	})
}

// TestSharedAcrossStores checks what one node writes another node reads:
// two Stores on one Redis, as two cluster nodes have.
func TestSharedAcrossStores(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t)
	a := redisstore.New(rdb, "nhsrelay:", redisstore.Options{})
	b := redisstore.New(rdb, "nhsrelay:", redisstore.Options{})
	o := directory.Organisation{ODS: "A81001", Name: "Test Practice", Status: directory.OrgActive}
	if err := a.Apply(t.Context(), directory.Batch{Organisations: []directory.Organisation{o}}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	rev, err := b.Revision(t.Context())
	if err != nil || rev != 1 {
		t.Fatalf("other node Revision() = %d, %v; want 1", rev, err)
	}
	snap, err := b.Load(t.Context())
	if err != nil || len(snap.Organisations) != 1 || snap.Organisations[0].Name != o.Name {
		t.Fatalf("other node Load() = %+v, %v; want %s", snap, err, o.Name)
	}
}

// TestWaitReplicasFails checks Apply reports a write no replica confirmed
// (the test server has none) instead of claiming it durable there.
func TestWaitReplicasFails(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t)
	s := redisstore.New(rdb, "w:", redisstore.Options{WaitReplicas: 1, WaitTimeout: 50_000_000})
	err := s.Apply(t.Context(), directory.Batch{Organisations: []directory.Organisation{{ODS: "A81001", Name: "x"}}})
	if err == nil {
		t.Fatal("Apply with WaitReplicas 1 and no replicas succeeded, want an error")
	}
}
