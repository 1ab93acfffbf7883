// Package maildir delivers messages into Maildir folders, as Dovecot and
// other IMAP servers read them (Maildir spec, https://cr.yp.to/proto/maildir.html):
// a message is written to tmp/, fsynced, linked into new/ under a unique
// time.unique.host name and new/ fsynced, so a reader never sees a partial
// message and a delivered message survives a crash. Folders Deliver creates
// (the mailbox itself on its first message, tmp, new, cur) have their
// parent fsynced too, so a power cut cannot take a new mailbox away.
//
// Deliver is idempotent by key: a delivered key leaves an empty marker file
// outside the Maildir (MarkerFolder), which a retry checks in one lookup,
// however big the mailbox, and which stays when the user moves or expunges
// the message. The relay uses queue ID + recipient as the key, so a crash
// after delivery but before the queue records it does not deliver twice.
// deliver's comment gives the argument. Prune removes old markers.
//
// Main functions: Deliver, Has, Prune. ErrBadKey for keys that cannot be
// part of a name.
package maildir
