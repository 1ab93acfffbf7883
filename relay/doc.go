// Package relay is the durable queue behind every intake: it stores each
// accepted message on disk before the intake acknowledges it, delivers it to
// each recipient's next hop (Maildir for hosted endpoints, verified TLS SMTP
// otherwise), retries with backoff, and reports failures and delays with
// RFC 3464 delivery status notifications.
package relay
