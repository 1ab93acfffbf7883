// Package redistest runs a real redis-server for a test: on a Unix socket
// in a fresh temporary directory (TCP disabled with --port 0, so no port is
// ever guessed), with AOF fsync on every write as production runs it, and
// killed by t.Cleanup.
//
// Main types: Server (StartServer); Start is StartServer plus a client.
package redistest
