// Package maildir delivers messages into Maildir folders
// (https://cr.yp.to/proto/maildir.html), as Dovecot and other IMAP servers
// read them: a message is written to tmp/, fsynced, linked into new/ under a
// unique name (time.unique.host) and the folder fsynced, so a reader never
// sees a partial message and a delivered message survives a crash.
//
// Deliver is idempotent by key: the key is part of the file name, and a
// message whose key is already in new/ or cur/ is not written again. The
// relay uses queue ID + recipient as the key, so a crash after delivery but
// before the queue records it does not deliver twice.
//
// Main function: Deliver. ErrBadKey for keys that cannot be part of a name.
package maildir
