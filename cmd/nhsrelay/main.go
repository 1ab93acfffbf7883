package main

import (
	"fmt"
	"os"
)

const usage = `usage: nhsrelay COMMAND [ARGS]

commands:
  init DIR                  write a config, development CA, sample directory and account
  serve -c FILE             run all listeners until SIGTERM (SIGHUP reloads)
  check-config -c FILE      validate a config file and print every problem
  queue list|show|retry|delete
                            inspect and act on the running server's queue
  quarantine list|show|release|delete
                            refused inbound S/MIME mail: sender, endpoint, reason
  audit verify              check the audit log's hash chain
  trace ID|MESSAGE-ID|RCPT [-since T]
                            a message's timeline, printed like a fax transmission report
  directory ...             manage the directory of NHS endpoints
  account add|set|list|show|passwd|disable|enable|delete|owns
                            manage sender accounts (SMTP AUTH logins)
  certs ...                 development CA, certificate issue and status
  notices ...               appointment notices: credentials, letters, dns-check
  dkim keygen DOMAIN SEL    DKIM key for notice mail and its DNS TXT record
  fax ...                   fax bridge: convert, HylaFAX ingest, dead letters, report
  status -c FILE            cluster mode: nodes, queue depth and delivery leases in Redis
`

// command is one subcommand: it gets the arguments after its name.
type command func(args []string) error

func commands() map[string]command {
	return map[string]command{
		"init":         runInit,
		"serve":        runServe,
		"check-config": runCheckConfig,
		"queue":        runQueue,
		"quarantine":   runQuarantine,
		"audit":        runAudit,
		"directory":    runDirectory,
		"account":      runAccount,
		"certs":        runCerts,
		"notices":      runNotices,
		"dkim":         runDKIM,
		"fax":          runFax,
		"status":       runStatus,
		"trace":        runTrace,
	}
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	run, ok := commands()[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "nhsrelay: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err := run(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "nhsrelay %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
