package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"nhsrelay/audit"
)

const auditUsage = `usage: nhsrelay audit verify [-c FILE | -f PATH]

Checks the hash chain of the audit log: every record must carry the hash of
the one before it. Prints the number of records, or names the first broken
one and exits 1. Reads the log file directly; the server may be running.
`

// errChainBroken makes the command exit 1 after the report is printed.
var errChainBroken = errors.New("audit log chain is broken")

func runAudit(args []string) error {
	if len(args) < 1 || args[0] != "verify" {
		fmt.Fprint(os.Stderr, auditUsage)
		return errors.New("want: audit verify")
	}
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	cfgPath := configFlag(fs)
	logPath := fs.String("f", "", "audit log `path` (default: audit.log in the config's data_dir)")
	fs.Usage = func() { fmt.Fprint(fs.Output(), auditUsage); fs.PrintDefaults() }
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	path := *logPath
	if path == "" {
		c, err := loadConfig(*cfgPath)
		if err != nil {
			return err
		}
		path = c.AuditLogPath()
	}
	return auditVerify(os.Stdout, path)
}

func auditVerify(w io.Writer, path string) error {
	n, err := audit.Verify(path)
	var broken *audit.BrokenError
	switch {
	case errors.As(err, &broken):
		fmt.Fprintf(w, "%s: chain broken at line %d", path, broken.Line)
		if broken.Seq != 0 {
			fmt.Fprintf(w, " (record %d)", broken.Seq)
		}
		fmt.Fprintf(w, ": %s\n", broken.Reason)
		return errChainBroken
	case err != nil:
		return err
	}
	fmt.Fprintf(w, "%s: %d records, chain intact\n", path, n)
	return nil
}
