// Package crashtest holds the end-to-end crash test of issue 3: it builds
// the real nhsrelay binary, loads it with Postfix's smtp-source, kills it
// with SIGKILL in the middle, restarts it and counts what arrives.
//
// The promise it checks is RFC 5321 §6.1's: once a server has said 250 to
// the end of DATA it "MUST NOT lose the message" — here, not even when the
// process dies without warning. At a hosted Maildir every acknowledged
// message must arrive exactly once. Towards a remote SMTP next hop exactly
// once is impossible in general (a crash between the remote 250 and our
// own commit means the message is sent again; RFC 1047 describes the same
// race at the end of DATA), so there the test requires no loss and at most
// as many duplicates as there were deliveries in flight when the process
// died.
//
// Senders. Towards the remote sink, 20 concurrent Postfix smtp-source
// processes from a trusted network; each message has its own envelope
// recipient (smtp-source -N), the token, and smtp-source -v's transcript
// says which got 250. Towards the hosted Maildir, 20 Go senders that
// submit over STARTTLS with AUTH as init's sample account: mail reaching
// a hosted mailbox must be S/MIME unless an account submitted it here
// (relay/smimepolicy), and smtp-source does neither TLS nor AUTH. The
// Maildir copy carries the token in its Delivered-To field.
//
// Each variant kills the relay twice, once per wave of load, so the second
// kill also lands while the first one's backlog is being delivered.
//
// The package has no code besides this comment; everything is in the
// _test.go files, run by `go test ./...`.
package crashtest
