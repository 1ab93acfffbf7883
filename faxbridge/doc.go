// Package faxbridge turns received faxes into clinical messages: each fax
// becomes a PDF (a cover page, then its pages at their true size) routed
// by the number that was dialled to the verified directory endpoint that
// owns it, and submitted to the relay like any other message (S/MIME,
// audit, DSN). A fax that cannot be routed, or has nothing readable in it,
// goes to an encrypted dead-letter store with the reason, an ERROR log
// line, a metric and an audit event, until an administrator re-routes it.
//
// Intakes, all feeding Bridge.Receive:
//   - T.37 internet fax over SMTP (RFC 3965 simple mode; TIFF-F attachments,
//     RFC 3949; the called number from an RFC 3192 "FAX=" address), as a
//     smtpd RecipientHandler that cmd wires (T37Handler);
//   - a watched spool folder (SpoolFolder), where the HylaFAX faxrcvd hook
//     (`nhsrelay fax ingest --hylafax`, in cmd) also hands faxes over;
//   - HTTP POST /v1/faxes from fax servers with their own credentials
//     (UploadHandler).
//
// Decoding lives in faxbridge/faxtiff (TIFF) and faxbridge/ccitt (ITU-T
// T.4/T.6); the PDF in faxbridge/faxpdf. Who still faxes is answered by
// Report, from the record of every fax received (no content, only numbers,
// counts and times). Administrators act through AdminHandler (dead letters,
// re-routing, fax server credentials, the report).
//
// Main types: Bridge (Receive, Reroute, Report), Inbound, Outcome,
// DeadLetter, T37, SpoolFolder; Decode and Render convert a TIFF alone.
package faxbridge
