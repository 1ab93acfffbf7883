// Package redisconn opens the Redis server a cluster of nhsrelay nodes
// shares and checks, before a node takes any mail, that it can keep what
// the node acknowledges.
//
// The guarantee: a 250 is sent only after Redis has the message in its
// append-only file (AOF) and has fsynced it. Redis 7.0 (Debian 12) has no
// WAITAOF, so the only way to know that a write is on disk when the reply
// arrives is "appendonly yes" with "appendfsync always": Redis then fsyncs
// the AOF before it answers each write. Check refuses a server set
// otherwise and names the setting. WAIT on replicas was not chosen: it
// proves the write reached other servers' memory, which a power cut of the
// site loses, and NHS sites run every node in one building more often
// than not. Replicas (and Sentinel) are for availability, on top.
package redisconn
