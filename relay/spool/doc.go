// Package spool stores message bodies durably and encrypted at rest.
//
// A body larger than Options.SmallMax (or any body, with the zero Options
// of Open) is one file <id>.msg in the spool folder, written by Spool.Write
// through the sequence temp file → write → fsync → close → link to its
// name → fsync folder (STYLE.md's sequence, with link instead of rename so
// an existing message is never replaced), so that a message is either
// wholly present or absent after a crash
// (RFC 5321 §6.1: once the server has said 250 it must not lose the message
// "because the host later crashes"). Concurrent writers share folder fsyncs
// (group commit), but no Write returns before its own data and name are on
// stable storage.
//
// Smaller bodies (OpenWith, Options.SmallMax; the relay uses one 64 KiB
// chunk) are appended as framed records to shared segment files
// <hex>.seg (seglog.go), and concurrent Writes share one fdatasync of the
// segment: no Write returns before an fdatasync that began after its own
// record was written has finished. Each record carries its length and a
// CRC-32C of its header and of its body, so damage stays inside the record
// it hits: reading skips a damaged body by its checked length, or
// resynchronises on the next header that checks out, and every other
// record is read. Open reports what it could not read (Damaged), naming
// the message where it can, and checks each body file's header and last
// chunk, which finds a file cut short anywhere. A segment whose fdatasync
// fails takes no more records; the next Write starts a new one. A segment is deleted when
// its records are all removed and unread; one that keeps only a few live
// records (deferred mail) is compacted: they are copied to the current
// segment, made durable, and the old one goes. Every Spool reads both
// kinds.
//
// The spool folder itself, when Open creates it, is fsynced in its parent
// the same way, so a new spool cannot vanish with the bodies in it.
//
// Bodies are sealed with XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03, on
// RFC 8439's ChaCha20-Poly1305) in 64 KiB chunks using the STREAM
// construction (Hoang, Reyhanitabar, Rogaway, Vizár, "Online
// Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", CRYPTO
// 2015, ePrint 2015/189; stream.go has the details): a
// random per-file nonce prefix, a chunk counter and a last-chunk flag form
// each chunk's nonce, and the file header is authenticated with every chunk,
// so a changed, reordered, dropped or truncated chunk is an error, never a
// silently short body. Reading streams: a body is never held whole in
// memory.
//
// The key is 32 random bytes in a key file (CreateKey, LoadKey) that only
// its owner may read.
//
// Main types: Spool, Options, Damage; ErrCorrupt for anything that fails authentication,
// ErrWrongKey for a file sealed under another key.
package spool
