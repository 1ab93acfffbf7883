// Package challengereply confirms directory verification challenges by
// reply mail. The directory mails a one-time code to a new endpoint from
// its challenge address (directory.challenge_from); the endpoint's owner
// replies and types the code. Handler is the smtpd.RecipientHandler for
// that address: smtpd hands it each message sent there, on any listener,
// after the same checks as all mail, and it calls
// (*directory.Directory).ConfirmByReply, which finds the code
// (directory.ReplyCodes: quoted copies never count), verifies the endpoint
// and audits the outcome. cmd constructs it (New) and wires it into
// smtpd.Config.Handlers.
//
// Before the directory is asked, a reply is refused if it could not have
// been typed by the mailbox the code went to:
//
//   - the null sender (RFC 5321 §4.5.5): bounces and notices;
//   - automatic mail (RFC 3834 §5, Auto-Submitted other than "no"; QUIRK:
//     also the older Precedence and X-Autoreply markers);
//   - a From: header (RFC 5322 §3.6.2) that is not the envelope sender
//     alone, compared without regard to case.
//
// The text read for the code is the first text/plain part that is not an
// attachment (RFC 2046 §5.1: the first of multipart/alternative is the
// plain one; RFC 1847 §2.1: the signed content of multipart/signed),
// decoded from base64 or quoted-printable (RFC 2045 §6) and from UTF-16 or
// UTF-32; failing one, the text of the first text/html part, without what
// a blockquote quotes. Encrypted replies cannot be read and are told so.
// Reads stop at bounds (maxScan, directory.MaxReplyText, parts, depth).
//
// Replies, all from the handler: 250 2.0.0 verification confirmed;
// 550 5.7.1 for no pending challenge, a wrong code and the refusals above;
// 550 5.6.0 for no code found or an unreadable reply; a directory failure
// is smtpd's 451 local error.
package challengereply
