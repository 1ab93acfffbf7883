// Package relay is the durable queue behind every intake: it stores each
// accepted message on disk before the intake acknowledges it, delivers it to
// each recipient's next hop (Maildir for hosted endpoints, verified TLS SMTP
// otherwise), retries with backoff, and reports failures and delays with
// RFC 3464 delivery status notifications.
//
// The flow of one message:
//
//  1. Submit streams the body into the encrypted spool (relay/spool: a
//     body of up to 64 KiB is appended to a shared segment file whose
//     fdatasync concurrent messages share; a larger one streams to a file
//     of its own, file and folder fsynced), then commits the per-recipient record to the
//     queue Store (relay/queue); only then does it return, and only then
//     may the intake reply 250 (RFC 5321 §6.1).
//  2. Run's dispatcher takes due messages off a min-heap on due time and
//     starts an attempt for each (Concurrency at once). The attempt asks
//     the Directory's policy (CheckRecipient) again for every due
//     recipient, since an endpoint may have changed since RCPT: a
//     suspended or retired endpoint (or an expired verification) fails
//     with a 5.7.1 DSN giving the directory's reason; a pending one is
//     held (below); an administrator's redirect is followed to its target
//     (RCPT TO the target's address; X-Original-To in a hosted copy) and
//     audited as endpoint.redirect_followed once per message and
//     recipient, when its outcome is final, however many retries followed
//     it (a Directory with Resolve, as *directory.Directory has).
//     Recipients are grouped by next hop: hosted → Maildir (relay/maildir,
//     one folder per endpoint named by its address, a domain endpoint's by
//     its domain, never by the recipient address; idempotent by queue ID
//     + mailbox, so one message reaches a mailbox once); "host:port"; or
//     the MX hosts of the domain by preference, falling back to the domain
//     itself (RFC 5321 §5.1), a null MX failing at once (RFC 7505).
//  3. Each SMTP hop has a limit of HopConcurrency transactions and a pool
//     of idle connections, reused after an RSET bounded by ResetTimeout
//     and closed after IdleTimeout; a hop with neither a delivery nor a
//     pooled connection is forgotten. One transaction carries all of the
//     hop's recipients. STARTTLS (RFC 3207) with a certificate verified
//     for the hop's host name and TLS 1.2+ is required; a hop that offers
//     no STARTTLS, or whose certificate does not verify, is a temporary
//     failure that says so — never a fallback to clear text. Plain SMTP is
//     used only when the directory says tls=plain-loopback and the address
//     dialled is loopback.
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
//     DSN at once. They are recorded on a context detached from the
//     attempt's, so an attempt that ran out of AttemptTimeout on one hop
//     still records what the others did. DSNs (relay/dsn) carry the
//     original header only, go to the envelope sender with a null
//     reverse-path, and are never sent for a message whose reverse-path is
//     null (RFC 5321 §4.5.5), so they cannot loop. They are queued before
//     the record is updated: a crash may repeat a DSN but never lose one.
//  6. Held recipients (no valid certificate, or a pending endpoint): the
//     sender gets a DSN (Action failed, X-NHSRelay-Held-Until, words that
//     say it is held, not given up) once per reason — a retry that holds
//     it again for the same reason sends nothing (Recipient.HoldNotified).
//     A held recipient is looked at again at the retry interval, delivered
//     once it safely can be, and failed with a final DSN at GiveUpAfter;
//     an administrator can Retry or Delete it at any time.
//  7. A message whose recipients are all Delivered or Failed leaves the
//     store, then the spool.
//
// System mail (Envelope.System) is the relay's own, non-clinical mail:
// the directory's verification challenges and administrators' summaries
// (cmd's directory Mailer sets it) and DSNs. It may go to a pending or
// suspended endpoint (a challenge is how one becomes verified), never a
// retired one, and the Sealer sends it unsealed, audited, to a recipient
// without a valid certificate.
//
// DSN routing: to the sender's endpoint when the directory has one;
// otherwise, for mail submitted here (an account or a trusted network),
// to the MX hosts of the sender's domain over verified TLS, so a local
// sender always gets its DSNs. For mail from another relay a sender
// outside the directory gets none (no backscatter). A DSN that leaves this
// relay returns the original header without Subject, Comments, Keywords
// and Thread-Topic (it may travel unsealed and a Subject may name a
// patient); a sender hosted here gets the whole header. A DSN that cannot
// be delivered is logged, counted and audited (dsn.undeliverable).
//
// Maildir delivered markers (relay/maildir) are pruned by Run at start-up,
// after recovery, and then about once a day by the configured clock, up to
// min(oldest queued Received, now − GiveUpAfter) − 24h, so that no marker
// a queued message might still need goes; a failed prune is logged.
//
// New reconciles spool and store after a crash: a body without a record
// was never acknowledged and is removed; a record without a body is logged
// at error level and dropped.
//
// Logs carry msgid, rcpt, endpoint, code and outcome, never a subject or
// body. Metrics (prometheus): nhsrelay_relay_{accepted,delivered,deferred,
// bounced,held,dsn,dsn_undeliverable}_total, nhsrelay_queue_messages,
// nhsrelay_queue_held_recipients, nhsrelay_queue_oldest_age_seconds,
// nhsrelay_relay_next_hops, nhsrelay_relay_delivery_latency_seconds.
// Audit actions: accepted, delivered, deferred, bounced, held, lost,
// endpoint.redirect_followed, dsn.undeliverable, queue.retry, queue.delete.
//
// Receipts (issue 12, receipts.go, reports_in.go). Each recipient keeps
// its RFC 3461 request (queue.Recipient.Notify, ORcpt; the message's Ret
// and EnvID). A next hop that offers DSN is given them (RET=FULL as HDRS:
// clinical content never comes back in clear) and reports itself; one that
// does not earns the sender a "relayed" receipt (§6.2.2); a hosted
// mailbox a "delivered" one, which names the recipient, the time, the
// attachments and the size. NOTIFY=NEVER suppresses failure and delay
// notices too, audited as dsn.suppressed. Every queued notice is audited
// as dsn.sent. A delivery report (DSN) or read receipt (MDN, RFC 8098)
// arriving in a hosted mailbox is audited as dsn.received or mdn.received
// with the Message-ID it is about, for the message timeline
// (audit/timeline). The accepted and outcome events carry that timeline's
// facts as audit.Fields: account, client IP, size, recipients,
// Message-ID; next hop, TLS version, peer certificate, reply.
//
// Main types: Relay (New, Submit, Run, Kick, List, Get, Retry, Delete,
// AdminHandler), Config, Envelope, Directory, Sealer, RecipientChecker,
// Opener, Body. Test helpers live in
// relay/relaytest (an SMTP sink).
package relay
