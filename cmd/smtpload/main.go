// Command smtpload is the benchmark's load tool for what Postfix's
// smtp-source and smtp-sink cannot do: STARTTLS. scripts/bench drives it.
//
//	smtpload send [-s SESSIONS] [-m MESSAGES] [-l LENGTH] [-starttls -cafile F [-auth USER:PASS]] HOST:PORT
//	    send MESSAGES messages of LENGTH payload bytes over SESSIONS parallel
//	    sessions, one message per connection as smtp-source does (-d reuses
//	    the connection), and print the rate; -auth logs in (AUTH PLAIN,
//	    RFC 4954) after STARTTLS, as a mail client on the clinical path does.
//	smtpload sink -listen ADDR -count N [-cert F -key F] [-done-file F]
//	    accept mail on ADDR (STARTTLS offered with -cert/-key), discard it,
//	    and exit 0 once N messages have been accepted, writing the Unix time
//	    in nanoseconds of the N-th acceptance to -done-file.
//	smtpload freeport [-n N]
//	    print N distinct free TCP ports on 127.0.0.1.
//
// It is a test tool: loopback only, no spool; the sink offers no AUTH. Messages are built as
// smtp-source builds them (From, To, Date, Message-Id, Subject, then lines of
// "X"), so both tools offer the relay under test the same work.
package main

import (
	"fmt"
	"os"
)

const usage = `usage: smtpload send|sink|freeport [flags]
  smtpload send -h, smtpload sink -h, smtpload freeport -h for flags
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "send":
		err = runSend(os.Args[2:])
	case "sink":
		err = runSink(os.Args[2:])
	case "freeport":
		err = runFreePort(os.Args[2:])
	default:
		fmt.Fprintf(os.Stderr, "smtpload: unknown command %q\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "smtpload %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
