// Package expiry is the server's expiry job, at start and every interval:
// the directory's verifications and endpoint certificates (the directory
// logs, audits and suspends), and the certificates the server itself uses
// (TLS server, S/MIME organisation and hosted endpoint pairs), each warned
// about within WarnBefore. A run with anything to report logs a summary
// and mails it (RFC 5322, built with go-message; Auto-Submitted per
// RFC 3834 §5) to SummaryTo, if set, through the directory's Mailer.
//
// It does not import certs (directory and certs stay apart): the server's
// certificates arrive already inspected through Config.Certs, as Cert
// values with the fields of certs.CertStatus.
//
// Main types: Job (New, Run, Once) and Config.
package expiry
