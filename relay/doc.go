// Package relay is the durable queue behind every intake: it stores each
// accepted message on disk before the intake acknowledges it, delivers it to
// each recipient's next hop (Maildir for hosted endpoints, verified TLS SMTP
// otherwise), retries with backoff, and reports failures and delays with
// RFC 3464 delivery status notifications.
//
// The flow of one message:
//
//  1. Submit streams the body into the encrypted spool (relay/spool: file
//     and folder fsynced), then commits the per-recipient record to the
//     queue Store (relay/queue); only then does it return, and only then
//     may the intake reply 250 (RFC 5321 §6.1).
//  2. Run's dispatcher starts an attempt for each due message (Concurrency
//     at once). The attempt looks every due recipient up in the Directory
//     and groups them by next hop: hosted → Maildir (relay/maildir,
//     idempotent by queue ID + recipient); "host:port"; or the MX hosts of
//     the domain by preference, falling back to the domain itself
//     (RFC 5321 §5.1), a null MX failing at once (RFC 7505).
//  3. Each SMTP hop has a limit of HopConcurrency transactions and a pool
//     of idle connections, reused with RSET and closed after IdleTimeout.
//     One transaction carries all of the hop's recipients. STARTTLS
//     (RFC 3207) with a certificate verified for the hop's host name and
//     TLS 1.2+ is required; a hop that offers no STARTTLS, or whose
//     certificate does not verify, is a temporary failure that says so —
//     never a fallback to clear text. Plain SMTP is used only when the
//     directory says tls=plain-loopback and the address dialled is
//     loopback.
//  4. A Sealer (S/MIME, issue 5) may protect the body per hop; an error
//     wrapping ErrHold holds the recipients and tells the sender. A Sealer
//     that is also a RecipientChecker is asked per recipient first, so one
//     recipient without a valid certificate holds only itself; TLS-only
//     endpoints get their own, unsealed transaction. For hosted endpoints
//     an Opener (if set) replaces the Sealer: it decrypts and verifies
//     inbound mail, and an error wrapping ErrQuarantine fails the
//     recipient (5.7.5) with a DSN to the sender, the Opener having kept
//     the message in quarantine (relay/smimepolicy).
//  5. Outcomes: 2xx delivered; 4xx and connection errors retried with
//     exponential backoff and jitter (RetryMin..RetryMax); one delay DSN
//     after DelayWarnAfter; a failure DSN after GiveUpAfter; 5xx a failure
//     DSN at once. DSNs (relay/dsn) carry the original header only, go to
//     the envelope sender with a null reverse-path, and are never sent for
//     a message whose reverse-path is null (RFC 5321 §4.5.5), so they
//     cannot loop. They are queued before the record is updated: a crash
//     may repeat a DSN but never lose one.
//  6. A message whose recipients are all Delivered or Failed leaves the
//     store, then the spool. Held recipients keep it queued until an
//     administrator retries or deletes it.
//
// New reconciles spool and store after a crash: a body without a record
// was never acknowledged and is removed; a record without a body is logged
// at error level and dropped.
//
// Logs carry msgid, rcpt, endpoint, code and outcome, never a subject or
// body. Metrics (prometheus): nhsrelay_relay_{accepted,delivered,deferred,
// bounced,held,dsn}_total, nhsrelay_queue_messages,
// nhsrelay_queue_oldest_age_seconds, nhsrelay_relay_delivery_latency_seconds.
// Audit actions: accepted, delivered, deferred, bounced, held, lost,
// queue.retry, queue.delete.
//
// Main types: Relay (New, Submit, Run, Kick, List, Get, Retry, Delete,
// AdminHandler), Config, Envelope, Directory, Sealer, RecipientChecker,
// Opener, Body. Test helpers live in
// relay/relaytest (an SMTP sink).
package relay
