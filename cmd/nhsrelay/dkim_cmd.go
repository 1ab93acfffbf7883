package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"nhsrelay/notices/dkim"
	"nhsrelay/smtpd"
)

const dkimUsage = `usage: nhsrelay dkim keygen [-type rsa|ed25519] [-o FILE] DOMAIN SELECTOR

Make a DKIM signing key for notice mail from DOMAIN (RSA-2048 by default;
Ed25519, RFC 8463, is smaller but not every receiver checks it), write it to
FILE (default DOMAIN.SELECTOR.key, mode 0600, never over an existing file)
and print the DNS TXT record to publish at SELECTOR._domainkey.DOMAIN.
Then add it to [[notices.dkim]] in the config.
`

func runDKIM(args []string) error { return dkimMain(args, os.Stdout) }

func dkimMain(args []string, w io.Writer) error {
	if len(args) == 0 || args[0] != "keygen" {
		fmt.Fprint(os.Stderr, dkimUsage)
		return fmt.Errorf("want: dkim keygen DOMAIN SELECTOR")
	}
	fs := flag.NewFlagSet("dkim keygen", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), dkimUsage) }
	kind := fs.String("type", "rsa", "rsa (2048 bits) or ed25519")
	out := fs.String("o", "", "key file")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return fmt.Errorf("want DOMAIN SELECTOR")
	}
	domain, selector := strings.ToLower(fs.Arg(0)), fs.Arg(1)
	if !smtpd.ValidHostname(domain) || strings.ContainsAny(selector, " ./;=") || selector == "" {
		return fmt.Errorf("%q is not a domain, or %q not a selector (letters, digits, -)", domain, selector)
	}
	k, err := dkim.GenerateKey(*kind)
	if err != nil {
		return err
	}
	pemKey, err := dkim.MarshalKey(k)
	if err != nil {
		return err
	}
	txt, err := dkim.TXTRecord(k)
	if err != nil {
		return err
	}
	path := *out
	if path == "" {
		path = domain + "." + selector + ".key"
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(pemKey); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(w, "key written to %s\n\nPublish this DNS TXT record:\n%s._domainkey.%s. IN TXT %s\n", path, selector, domain, quoteTXT(txt))
	return nil
}

// quoteTXT splits a TXT value into quoted strings of at most 255 octets
// (RFC 1035 §3.3.14), as zone files write them.
func quoteTXT(s string) string {
	var parts []string
	for len(s) > 255 {
		parts, s = append(parts, `"`+s[:255]+`"`), s[255:]
	}
	return strings.Join(append(parts, `"`+s+`"`), " ")
}
