// Package boltstore is the embedded directory.Store: one bbolt file holding
// organisations, endpoints, accounts and verification challenges as JSON,
// one bucket each. Each Apply is one bbolt read-write transaction, which
// bbolt fsyncs on Commit, so a Batch is durable and atomic when Apply
// returns. A meta bucket holds the revision counter.
//
// Main types: Store, made by Open; it passes storetest's contract suite.
package boltstore
