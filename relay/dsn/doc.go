// Package dsn writes and reads delivery status notifications (RFC 3464):
// a multipart/report (RFC 6522) with report-type=delivery-status whose
// parts are a human-readable explanation, a message/delivery-status part
// (per-message fields, then one group of fields per recipient) and a
// text/rfc822-headers part holding the original message's header only.
//
// nhsrelay never returns the original body in a DSN (RFC 3461 §4.3 RET=HDRS
// behaviour is forced): a clinical body must not travel back in clear.
//
// Success reports (Action delivered or relayed, RFC 3461 §6.2.2) are
// receipts: their subject and human part say so. Original-Envelope-Id
// (ENVID) and Original-Recipient (ORCPT) are written and read.
//
// ParseMDN reads a message disposition notification (RFC 8098) that a
// reader's mail client sent back; nhsrelay never writes one.
//
// Main types: Report (what Write renders and Parse returns), Recipient,
// Action. Write builds a complete message; Parse reads one back, for tests
// and for tools that read our own reports.
package dsn
