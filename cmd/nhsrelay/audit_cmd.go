package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

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
		if broken.Resumed > 0 {
			fmt.Fprintf(w, "%s: the server found the break when it opened the log and started a new segment at line %d (an audit.segment record linked to the line before it); %d records verify in all\n", path, broken.Resumed, n)
		}
		if more := strings.Count(err.Error(), "\n"); more > 0 {
			fmt.Fprintf(w, "%s: %d more break(s) after that:\n%s\n", path, more, err.Error()[strings.Index(err.Error(), "\n")+1:])
		}
		return errChainBroken
	case err != nil:
		return err
	}
	fmt.Fprintf(w, "%s: %d records, chain intact\n", path, n)
	return nil
}
