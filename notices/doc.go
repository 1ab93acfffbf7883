// Package notices sends appointment notices to patients (issue 11): email
// by default, a printed letter when there is no usable email.
//
// Intake: sending systems (PAS, booking systems) POST /v1/notices
// (APIHandler) with a notice credential scoped to their organisations
// (Credential; only a SHA-256 of its secret is kept). Request.Validate
// names every bad field (400); a credential out of scope is 403; a body
// over 64 KiB is 413. Idempotency by reference: the same content (any
// version taken) returns the notice as it is; kind changed or cancelled
// makes the next version of the same calendar event; a reference reused
// for another patient, organisation or (with kind new) another appointment
// is 409. A notice is stored (Store; notices/boltstore seals each record
// with the spool key) before the answer: nothing answered is lost.
//
// Sending: Run dispatches each version within its organisation's sending
// window (Window, Europe/London): the email (render.go: text, accessible
// HTML and an iCalendar REQUEST or CANCEL, notices/ical, as
// multipart/alternative with go-message) is handed to the relay as
// relay.KindNotice mail with a VERP return path bounce+<id>.<version>@host.
// The relay signs it with DKIM (notices/dkim) and delivers it to the
// patient's MX over STARTTLS (MTA-STS honoured), never to a directory
// endpoint; it reports each outcome to NoticeOutcome instead of sending a
// DSN. A crash between the relay's acceptance and the notice's update
// sends that email again (at least once).
//
// Status uses GOV.UK Notify's words: created → sending → delivered |
// permanent-failure | temporary-failure (or still sending after
// StillSendingAfter) | technical-failure; letter-queued → letter-printed;
// cancelled. The email's first final status per version wins; later
// receipts (a DSN after the MX accepted it: BounceHandler, wired into
// smtpd's MX listener by cmd) are recorded, and a hard bounce still
// queues the letter.
//
// Letters (letters.go, letterpdf.go): no email, or an email that failed →
// a letter in the print queue; CreatePrintRun gathers those queued before
// the daily cut-off into one A4 PDF (address in the window-envelope area),
// MarkPrinted marks them printed; a pending letter can be cancelled.
// AdminHandler serves the print queue and credentials behind the admin
// token.
//
// Webhooks (webhook.go): each status change is stored with the notice as
// an event (idempotency key, per-notice sequence number) and POSTed to the
// credential's webhook, signed HMAC-SHA256 over "timestamp.body", retried
// with backoff (30 s doubling to 1 h) for WebhookRetryFor. Events may
// arrive out of order; the sequence number orders them.
//
// Audit actions: notice.accepted, notice.credential_added,
// notice.credential_revoked, notice.letter_cancelled, notice.print_run,
// notice.print_run_printed, notice.webhook_failed. Logs carry notice IDs
// and references, never a patient's name, address or NHS number.
package notices
