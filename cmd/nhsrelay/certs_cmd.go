package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"nhsrelay/certs"
)

const certsUsage = `usage: nhsrelay certs COMMAND [ARGS]

Offline certificate tools; they read and write files only.

commands:
  init-ca [--name NAME] DIR
        create a development CA in DIR (ca.crt, ca.key 0600); refuses to
        overwrite an existing one
  issue --tls HOST[,HOST...] --ca DIR --out PREFIX
        issue a TLS certificate (P-256) for the host names or IPs;
        writes PREFIX.crt and PREFIX.key (0600)
  issue --smime ADDRESS|ODS --ca DIR --out PREFIX
        issue an S/MIME certificate (emailProtection) for a mail address
        (RSA-3072: signs and receives encrypted mail), or an organisation
        signing certificate for an ODS code (ECDSA P-256: signs only)
        either issue also takes -days N (lifetime in days; default 397 for
        TLS, 825 for S/MIME) and -not-before TIME (RFC 3339 or YYYY-MM-DD;
        default now), for short-lived or not-yet-valid certificates
  revoke --ca DIR [-reason WHY] CERTFILE...
        record the certificates (issued by the CA in DIR) as revoked in
        DIR/revoked.txt; relying parties learn of it from the next CRL
  crl --ca DIR --out FILE
        write the CA's CRL (PEM, every revoked certificate, current for 7
        days, next CRL number) to FILE, replacing it atomically: a file
        for smime.crls, which serve reloads when it changes
  status FILE...
        list every certificate in the PEM files with its role and days
        left; exits 1 if any is expired, not yet valid, weak, or within
        30 days of expiry
  status -c CONFIG
        the same for every certificate the server uses: the TLS
        certificate, the S/MIME pairs in smime.keys_dir, and (when the
        server is running) each directory endpoint's encryption certificates
`

func runCerts(args []string) error {
	return certsMain(args, os.Stdout, time.Now)
}

func certsMain(args []string, stdout io.Writer, now func() time.Time) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, certsUsage)
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return nil
	}
	switch args[0] {
	case "init-ca":
		return certsInitCA(args[1:], stdout)
	case "issue":
		return certsIssue(args[1:], stdout)
	case "status":
		return certsStatus(args[1:], stdout, now())
	case "revoke":
		return certsRevoke(args[1:], stdout, now())
	case "crl":
		return certsCRL(args[1:], stdout, now())
	}
	return fmt.Errorf("unknown command %q\n\n%s", args[0], certsUsage)
}

func newCertsFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("certs "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned; usage is certsUsage
	return fs
}

func certsInitCA(args []string, stdout io.Writer) error {
	fs := newCertsFlags("init-ca")
	name := fs.String("name", "nhsrelay development CA", "CA subject common name")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("init-ca: %w\n\n%s", err, certsUsage)
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("init-ca: want exactly one DIR\n\n%s", certsUsage)
	}
	ca, err := certs.InitCA(fs.Arg(0), *name)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created CA %q in %s (valid until %s)\n", ca.Cert.Subject.CommonName, fs.Arg(0), ca.Cert.NotAfter.UTC().Format("2006-01-02"))
	fmt.Fprintf(stdout, "keep %s/%s private; trust %s/%s for development only\n", fs.Arg(0), certs.CAKeyFile, fs.Arg(0), certs.CACertFile)
	return nil
}

func certsIssue(args []string, stdout io.Writer) error {
	fs := newCertsFlags("issue")
	tlsHosts := fs.String("tls", "", "comma-separated host names or IPs")
	smime := fs.String("smime", "", "mail address or ODS code")
	caDir := fs.String("ca", "", "CA directory")
	out := fs.String("out", "", "output prefix")
	days := fs.Int("days", 0, "lifetime in days")
	notBefore := fs.String("not-before", "", "start of validity")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("issue: %w\n\n%s", err, certsUsage)
	}
	var problems []string
	if (*tlsHosts == "") == (*smime == "") {
		problems = append(problems, "give exactly one of --tls or --smime")
	}
	if *caDir == "" {
		problems = append(problems, "--ca DIR is required")
	}
	if *out == "" {
		problems = append(problems, "--out PREFIX is required")
	}
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected arguments %q", fs.Args()))
	}
	if len(problems) > 0 {
		return fmt.Errorf("issue: %s\n\n%s", strings.Join(problems, "; "), certsUsage)
	}
	ca, err := certs.LoadCA(*caDir)
	if err != nil {
		return err
	}
	if err := setIssueValidity(ca, *days, *notBefore); err != nil {
		return fmt.Errorf("issue: %w", err)
	}
	var certPEM, keyPEM []byte
	if *tlsHosts != "" {
		certPEM, keyPEM, err = ca.IssueTLS(strings.Split(*tlsHosts, ","))
	} else {
		certPEM, keyPEM, err = ca.IssueSMIME(*smime)
	}
	if err != nil {
		return err
	}
	certFile, keyFile, err := certs.WritePair(*out, certPEM, keyPEM)
	if err != nil {
		return err
	}
	chain, err := certs.ParseCertificates(certPEM)
	if err != nil {
		return err
	}
	s := certs.Inspect(chain[0], time.Now())
	fmt.Fprintf(stdout, "issued %s certificate for %s, valid until %s\n  %s\n  %s (private, 0600)\n",
		s.Role, s.Subject, s.NotAfter.UTC().Format("2006-01-02"), certFile, keyFile)
	return nil
}

func certsStatus(args []string, stdout io.Writer, now time.Time) error {
	fs := newCertsFlags("status")
	configPath := fs.String("c", "", "config `file`: list the certificates the server uses")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("status: %w\n\n%s", err, certsUsage)
	}
	var list []certs.CertStatus
	switch {
	case *configPath != "" && fs.NArg() == 0:
		var err error
		if list, err = certsInUseStatus(*configPath, stdout, now); err != nil {
			return err
		}
	case *configPath == "" && fs.NArg() > 0:
		var err error
		if list, err = certs.Status(now, fs.Args()...); err != nil {
			return err
		}
	default:
		return fmt.Errorf("status: name certificate FILEs or -c CONFIG, not both or neither\n\n%s", certsUsage)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tSUBJECT\tROLE\tEXPIRES\tDAYS LEFT\tSTATUS")
	bad := 0
	for _, s := range list {
		status := "ok"
		if s.Warning != "" {
			status, bad = "WARNING: "+s.Warning, bad+1
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", s.File, s.Subject, s.Role, s.NotAfter.UTC().Format("2006-01-02"), s.DaysLeft, status)
	}
	tw.Flush()
	if bad > 0 {
		return fmt.Errorf("status: %d of %d certificates need attention", bad, len(list))
	}
	return nil
}
