// Package queuetest is the contract suite every queue.Store passes, as
// fstest.TestFS is for file systems: Run checks a store through open (a new,
// empty store) and reopen (the same data after a restart). StartRedis and
// StartRedisServer run a real redis-server on a free loopback port for the
// Redis store's tests, with the AOF fsynced on every write; RedisServer.Crash
// kills it with SIGKILL and restarts it on the same data.
package queuetest
