// Package redisstore is the cluster-mode directory.Store: every node of a
// cluster shares one Redis. Records are JSON in four hashes (organisations,
// endpoints, accounts, challenges) and a revision counter, all under one
// key prefix and one hash tag ("{directory}") so a Redis Cluster keeps them
// in one slot. Apply is one MULTI/EXEC transaction; Load reads all hashes
// in one transaction, so it never sees half a batch.
//
// It takes a *redis.Client (one Redis, or a Sentinel failover client), not
// a Redis Cluster client: a batch and its WAIT must share one connection.
//
// Durability is Redis's: run it with "appendonly yes" and "appendfsync
// always" so EXEC is answered only after the AOF is fsynced, and set
// Options.WaitReplicas to have Apply wait for replicas (WAIT) too.
//
// QUIRK: MULTI/EXEC does not roll back when a command inside fails at run
// time; our commands (HSET, HDEL, INCR on keys only this package writes)
// fail only if someone else changed the keys' types.
//
// Main types: Store, made by New over a client and key prefix; Options
// (WaitReplicas). It passes storetest's contract suite.
package redisstore
