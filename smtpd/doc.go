// Package smtpd is nhsrelay's SMTP front door, built on emersion/go-smtp. It
// runs three kinds of listener (Mode): Submission (587, STARTTLS), and
// SubmissionTLS (465, implicit TLS, RFC 8314) for GP and hospital mail
// clients, which must authenticate over TLS; and MX (25, STARTTLS offered,
// RFC 3207) for other NHS relays, which may only deliver to endpoints hosted
// here. Every recipient is checked against the directory; every accepted
// message is handed to the relay's durable queue, and 250 is sent only after
// the queue says the message is on stable storage.
//
// Standards implemented here, and how fully:
//
//   - RFC 5321 (SMTP): replies, Received trace header (§4.4), limits (§4.5.3);
//     protocol engine is go-smtp's.
//   - RFC 3463 / RFC 2034: every reply carries an enhanced status code whose
//     class digit is derived from the basic code (reply).
//   - RFC 4954 (AUTH) with SASL PLAIN (RFC 4616) and LOGIN, over TLS only;
//     538 5.7.11 before TLS, 530 5.7.0 for MAIL before AUTH.
//   - RFC 3207 (STARTTLS), done by our wire layer below go-smtp, as implicit
//     TLS on 465 is (RFC 8314), so nothing of the session is hidden from our
//     checks after it (starttls.go); EHLO is required again after it (§4.2).
//   - The replies go-smtp writes itself ("Roger, accepting mail from" and
//     the like) are replaced by ours, with enhanced codes and RFC 5321's
//     codes where go-smtp differs (503 for a bad sequence; replies.go).
//   - Addresses with control characters are refused (501 5.1.7 / 5.1.3),
//     non-ASCII ones without SMTPUTF8 with 553 5.6.7 (address.go).
//   - A full disk at the queue is 452 4.3.1 (RFC 3463 §3.4), never 250.
//   - RFC 3848: "with ESMTP / ESMTPS / ESMTPA / ESMTPSA" in Received.
//   - RFC 2920 (PIPELINING): clients that talk before the greeting, before
//     the EHLO reply, before the STARTTLS reply or before the 354 DATA reply
//     are refused (554 5.5.1) and disconnected — see wire.go for what can be
//     seen and when.
//   - RFC 1870 (SIZE): advertised; 552 5.3.4 past MaxMessageBytes.
//   - RFC 3461 (DSN): offered on every listener; RET and ENVID from MAIL,
//     NOTIFY and ORCPT from each RCPT go to the queue with the envelope
//     (dsn.go), with the account's Receipts default applied.
//   - RFC 3030 (CHUNKING): BDAT, which go-smtp always offers; chunks that
//     carry data count as progress, not as junk commands, and BDAT bodies
//     meet every check DATA bodies do.
//   - SMTP smuggling (CVE-2023-51764 class): a message with a bare CR or bare
//     LF is refused with 554 5.6.0 (RFC 5321 §2.3.8), streaming, so the queue
//     never commits it, on every port and after STARTTLS alike.
//
// The audit log fails closed: while it reports itself broken (audit.Log's
// Err, which recovers by itself), MAIL and DATA are refused with 451 4.3.0;
// each accepted message is recorded once per recipient before 250 (audit.go).
//
// Special recipients (the directory's challenge address, later T.37 fax
// mail) go to a RecipientHandler instead of the queue: cmd wires them into
// Config.Handlers, their DATA meets the same checks, and a transaction is
// never split between a handler and the queue (452 4.5.3, send separately;
// handler.go).
//
// Main types: Server (New, Serve, Shutdown), Config, Mode, the two small
// interfaces it consumes, Directory and Queue, and RecipientHandler with
// its HandlerError.
package smtpd
