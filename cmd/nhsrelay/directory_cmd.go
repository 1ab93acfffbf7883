package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"nhsrelay/directory"
	"nhsrelay/directory/ods"
)

const directoryUsage = `usage: nhsrelay directory [-c FILE] COMMAND [ARGS]

Manage the running server's directory of NHS endpoints (through the admin API).
ENDPOINT is an endpoint ID (ep-...) or its address.

commands:
  list [-ods CODE] [-status S] [-name WORDS] [-address A] [-json]
                             endpoints, one a line
  list -orgs [-name WORDS] [-json]
                             organisations, one a line
  show [-json] ENDPOINT      one endpoint and its verification
  show -org [-json] ODS      one organisation and its endpoints
  add -ods CODE [-purpose P] [-hop mx|hosted|HOST:PORT] [-plain-loopback]
      [-fax NUMBER]... [-contact C]... [-cert FILE]...
      [-tls-only -tls-only-evidence WHY] ADDRESS
                             add a pending endpoint (a mailbox or a whole domain);
                             -cert: its S/MIME certificate (PEM, may hold the
                             chain); -tls-only: exception, no S/MIME, verified
                             TLS only, with the evidence for it (audited)
  set-cert ENDPOINT FILE...  replace its S/MIME certificates (PEM or DER; audited)
  set-cert -none ENDPOINT    remove them all
  import-ods [-strict] [-v] FILE
                             import the NHS ODS GP practice file epraccur.csv
                             ("-" reads standard input); -strict: any bad row
                             refuses the whole file, nothing is written
  import-ods -successors [-strict] FILE
                             import the ODS successor file succ.csv: successors
                             are named in refusals, mail is never rerouted
  verify -challenge ENDPOINT send a one-time code to the endpoint's address
  verify -code CODE ENDPOINT confirm the code its owner received
  verify -attest EVIDENCE ENDPOINT
                             verify on your word, saying how you know (audited)
  suspend -reason WHY ENDPOINT
                             stop clinical mail to it; senders see WHY
  retire -reason WHY ENDPOINT
                             end it for good; its address may be reused
  redirect ENDPOINT TO|-     send its mail to endpoint TO ("-" removes; audited)
  check [-json] ADDRESS      can I send to this? exit status 1 if not
  export [-format json|csv] [-what endpoints|organisations|accounts] [-o FILE]
                             everything, for backup or a spreadsheet

Flags may come before or after the arguments.
`

// runDirectory talks to the running server's admin API, as postmap and
// postconf talk to Postfix's tables.
func runDirectory(args []string) error {
	return directoryMain(context.Background(), args, os.Stdout, os.Stdin)
}

func directoryMain(ctx context.Context, args []string, stdout io.Writer, stdin io.Reader) error {
	fs := flag.NewFlagSet("directory", flag.ContinueOnError)
	path := configFlag(fs)
	cmd, rest, err := parseCommand(fs, directoryUsage, args)
	if err != nil {
		return err
	}
	sub, ok := directoryCommands[cmd]
	if !ok {
		fs.Usage()
		return fmt.Errorf("unknown directory command %q", cmd)
	}
	opts := &dirOptions{}
	sfs := flag.NewFlagSet("directory "+cmd, flag.ContinueOnError)
	sfs.Usage = func() { fmt.Fprint(sfs.Output(), directoryUsage) }
	sub.flags(sfs, opts)
	pos, err := parseInterleaved(sfs, rest)
	if err != nil {
		return err
	}
	if len(pos) < sub.minArgs || len(pos) > sub.maxArgs {
		sfs.Usage()
		return fmt.Errorf("directory %s: want %s, got %d argument(s)", cmd, sub.args, len(pos))
	}
	c, err := newAdminClient(*path)
	if err != nil {
		return err
	}
	return sub.run(&dirCmd{c: c, out: stdout, in: stdin, o: opts}, ctx, pos)
}

// parseInterleaved parses flags wherever they appear among the arguments
// ("suspend ep-1 -reason x" as well as "suspend -reason x ep-1").
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// multiFlag is a flag that may be given more than once.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// dirOptions holds every subcommand's flags; each uses its own.
type dirOptions struct {
	json, orgs, org, strict, verbose, tlsOnly, plain, challenge bool
	successors, none                                            bool
	ods, status, name, address, purpose, hop, code, attest      string
	reason, format, what, output, tlsOnlyEvidence               string
	faxes, contacts, certs                                      multiFlag
}

type dirSubcommand struct {
	args             string // for the error when the count is wrong
	minArgs, maxArgs int
	flags            func(fs *flag.FlagSet, o *dirOptions)
	run              func(d *dirCmd, ctx context.Context, args []string) error
}

func jsonFlag(fs *flag.FlagSet, o *dirOptions) {
	fs.BoolVar(&o.json, "json", false, "print the server's JSON")
}

var directoryCommands = map[string]dirSubcommand{
	"list": {"no arguments", 0, 0, func(fs *flag.FlagSet, o *dirOptions) {
		jsonFlag(fs, o)
		fs.BoolVar(&o.orgs, "orgs", false, "list organisations instead of endpoints")
		fs.StringVar(&o.ods, "ods", "", "only endpoints of this ODS `code`")
		fs.StringVar(&o.status, "status", "", "only endpoints in this `status` (pending, verified, suspended, retired)")
		fs.StringVar(&o.name, "name", "", "organisation name `words` (prefixes)")
		fs.StringVar(&o.address, "address", "", "only this `address` (a domain also matches its mailboxes)")
	}, (*dirCmd).list},
	"show": {"one ENDPOINT or ODS code", 1, 1, func(fs *flag.FlagSet, o *dirOptions) {
		jsonFlag(fs, o)
		fs.BoolVar(&o.org, "org", false, "show an organisation by ODS code")
	}, (*dirCmd).show},
	"add": {"one ADDRESS", 1, 1, func(fs *flag.FlagSet, o *dirOptions) {
		jsonFlag(fs, o)
		fs.StringVar(&o.ods, "ods", "", "ODS `code` of the owning organisation (required)")
		fs.StringVar(&o.purpose, "purpose", "", "`purpose`: "+strings.Join(directory.Purposes(), ", "))
		fs.StringVar(&o.hop, "hop", "mx", "next hop: mx, hosted, or `host:port`")
		fs.BoolVar(&o.plain, "plain-loopback", false, "allow plain SMTP to a loopback host:port next hop (test sinks only)")
		fs.BoolVar(&o.tlsOnly, "tls-only", false, "exception: deliver without S/MIME, over verified TLS only (audited; needs -tls-only-evidence)")
		fs.StringVar(&o.tlsOnlyEvidence, "tls-only-evidence", "", "why the TLS-only exception is allowed (`evidence`, audited)")
		fs.Var(&o.faxes, "fax", "fax `number` the endpoint owns (repeatable)")
		fs.Var(&o.contacts, "contact", "contact person, email or phone (repeatable)")
		fs.Var(&o.certs, "cert", "S/MIME certificate `file` (PEM, may hold the chain; repeatable)")
	}, (*dirCmd).add},
	"set-cert": {"ENDPOINT and certificate FILEs", 1, 1 + 16, func(fs *flag.FlagSet, o *dirOptions) {
		jsonFlag(fs, o)
		fs.BoolVar(&o.none, "none", false, "remove all its certificates")
	}, (*dirCmd).setCert},
	"import-ods": {"one FILE", 1, 1, func(fs *flag.FlagSet, o *dirOptions) {
		jsonFlag(fs, o)
		fs.BoolVar(&o.strict, "strict", false, "refuse the whole file if any row is bad")
		fs.BoolVar(&o.verbose, "v", false, "list the ODS codes added, updated and closed")
		fs.BoolVar(&o.successors, "successors", false, "FILE is the ODS successor file (succ.csv)")
	}, (*dirCmd).importODS},
	"verify": {"one ENDPOINT", 1, 1, func(fs *flag.FlagSet, o *dirOptions) {
		jsonFlag(fs, o)
		fs.BoolVar(&o.challenge, "challenge", false, "send a one-time code to the endpoint")
		fs.StringVar(&o.code, "code", "", "confirm the one-time `code` the endpoint received")
		fs.StringVar(&o.attest, "attest", "", "verify on your word; `evidence`: how you know the address is theirs")
	}, (*dirCmd).verify},
	"suspend": {"one ENDPOINT", 1, 1, func(fs *flag.FlagSet, o *dirOptions) {
		fs.StringVar(&o.reason, "reason", "", "why, in words senders will see (required)")
	}, (*dirCmd).suspend},
	"retire": {"one ENDPOINT", 1, 1, func(fs *flag.FlagSet, o *dirOptions) {
		fs.StringVar(&o.reason, "reason", "", "why (required)")
	}, (*dirCmd).retire},
	"redirect": {"ENDPOINT and TO", 2, 2, func(fs *flag.FlagSet, o *dirOptions) {}, (*dirCmd).redirect},
	"check":    {"one ADDRESS", 1, 1, jsonFlag, (*dirCmd).check},
	"export": {"no arguments", 0, 0, func(fs *flag.FlagSet, o *dirOptions) {
		fs.StringVar(&o.format, "format", "json", "json or csv")
		fs.StringVar(&o.what, "what", "endpoints", "for csv: endpoints, organisations or accounts (never password hashes)")
		fs.StringVar(&o.output, "o", "", "write to `file` instead of standard output")
	}, (*dirCmd).export},
}

// dirCmd is one run of a subcommand.
type dirCmd struct {
	c   *adminClient
	out io.Writer
	in  io.Reader
	o   *dirOptions
}

const dirAPI = "/v1/directory"

type endpointList struct {
	Endpoints []directory.Endpoint `json:"endpoints"`
}

func (d *dirCmd) list(ctx context.Context, _ []string) error {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("name", d.o.name)
	if d.o.orgs {
		if d.o.ods != "" || d.o.status != "" || d.o.address != "" {
			return errors.New("list -orgs takes only -name")
		}
		var list struct {
			Organisations []directory.Organisation `json:"organisations"`
		}
		if err := d.get(ctx, dirAPI+"/organisations", q, &list); err != nil || d.o.json {
			return err
		}
		writeOrganisations(d.out, list.Organisations)
		return nil
	}
	set("ods", d.o.ods)
	set("status", d.o.status)
	set("address", d.o.address)
	var list endpointList
	if err := d.get(ctx, dirAPI+"/endpoints", q, &list); err != nil || d.o.json {
		return err
	}
	writeEndpoints(d.out, list.Endpoints)
	return nil
}

// get fetches path?q into out, or with -json copies the answer to stdout.
func (d *dirCmd) get(ctx context.Context, path string, q url.Values, out any) error {
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	if d.o.json {
		return d.c.do(ctx, http.MethodGet, path, nil, d.out)
	}
	return d.c.do(ctx, http.MethodGet, path, nil, out)
}

// resolve turns an ENDPOINT argument into an endpoint: an ID, or an address
// (anything with "@" or "."; IDs have neither).
func (d *dirCmd) resolve(ctx context.Context, arg string) (directory.Endpoint, error) {
	var e directory.Endpoint
	if !strings.ContainsAny(arg, "@.") {
		err := d.c.do(ctx, http.MethodGet, dirAPI+"/endpoints/"+url.PathEscape(arg), nil, &e)
		return e, err
	}
	var list endpointList
	if err := d.c.do(ctx, http.MethodGet, dirAPI+"/endpoints?"+url.Values{"address": {arg}}.Encode(), nil, &list); err != nil {
		return e, err
	}
	var retired []directory.Endpoint
	for _, x := range list.Endpoints {
		if strings.EqualFold(x.Address, arg) {
			if x.Status != directory.StatusRetired {
				return x, nil
			}
			retired = append(retired, x)
		}
	}
	if len(retired) > 0 { // only retired ones: any will do to show
		return retired[len(retired)-1], nil
	}
	return e, fmt.Errorf("no endpoint with address %s (nhsrelay directory list -address DOMAIN shows near matches)", arg)
}

func (d *dirCmd) show(ctx context.Context, args []string) error {
	if d.o.org {
		code := strings.ToUpper(args[0])
		var o directory.Organisation
		if err := d.get(ctx, dirAPI+"/organisations/"+url.PathEscape(code), nil, &o); err != nil || d.o.json {
			return err
		}
		var list endpointList
		if err := d.c.do(ctx, http.MethodGet, dirAPI+"/endpoints?ods="+url.QueryEscape(code), nil, &list); err != nil {
			return err
		}
		writeOrganisation(d.out, o)
		fmt.Fprintln(d.out)
		writeEndpoints(d.out, list.Endpoints)
		return nil
	}
	e, err := d.resolve(ctx, args[0])
	if err != nil {
		return err
	}
	return d.printEndpoint(ctx, e)
}

// printEndpoint shows e (or its JSON with -json) with its organisation's name.
func (d *dirCmd) printEndpoint(ctx context.Context, e directory.Endpoint) error {
	if d.o.json {
		return d.c.do(ctx, http.MethodGet, dirAPI+"/endpoints/"+url.PathEscape(e.ID), nil, d.out)
	}
	var o directory.Organisation
	if err := d.c.do(ctx, http.MethodGet, dirAPI+"/organisations/"+url.PathEscape(e.ODS), nil, &o); err != nil {
		o = directory.Organisation{ODS: e.ODS} // shown without a name
	}
	writeEndpoint(d.out, e, o)
	return nil
}

func (d *dirCmd) add(ctx context.Context, args []string) error {
	if d.o.ods == "" {
		return errors.New("add: -ods CODE is required (the organisation that owns the address)")
	}
	hop := directory.NextHop{Kind: directory.NextHopKind(d.o.hop)}
	if d.o.hop != string(directory.HopMX) && d.o.hop != string(directory.HopHosted) {
		hop = directory.NextHop{Kind: directory.HopHost, Host: d.o.hop}
	}
	if d.o.plain {
		hop.TLS = directory.TLSPlainLoopback
	}
	switch {
	case d.o.tlsOnly && strings.TrimSpace(d.o.tlsOnlyEvidence) == "":
		return errors.New("add: -tls-only needs -tls-only-evidence WHY (the exception sends clinical mail without S/MIME; the audit log keeps why)")
	case !d.o.tlsOnly && d.o.tlsOnlyEvidence != "":
		return errors.New("add: -tls-only-evidence is given only with -tls-only")
	}
	ders, err := readCertFiles(d.o.certs)
	if err != nil {
		return fmt.Errorf("add: %w", err)
	}
	body := map[string]any{"address": args[0], "ods": d.o.ods, "purpose": d.o.purpose, "next_hop": hop,
		"tls_only": d.o.tlsOnly, "tls_only_evidence": d.o.tlsOnlyEvidence, "certificates": ders,
		"fax_numbers": []string(d.o.faxes), "contacts": []string(d.o.contacts)}
	var e directory.Endpoint
	if err := d.c.do(ctx, http.MethodPost, dirAPI+"/endpoints", body, &e); err != nil {
		return err
	}
	if d.o.json {
		return d.printEndpoint(ctx, e)
	}
	fmt.Fprintf(d.out, "%s: added %s for %s, pending verification\n", e.ID, e.Address, e.ODS)
	writeCertLines(d.out, e.Certificates)
	fmt.Fprintf(d.out, "verify it: nhsrelay directory verify -challenge %s   (or -attest \"EVIDENCE\")\n", e.ID)
	return nil
}

func (d *dirCmd) importODS(ctx context.Context, args []string) error {
	var r io.Reader = d.in
	if args[0] != "-" {
		f, err := os.Open(args[0])
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	path := dirAPI + "/import-ods"
	if d.o.successors {
		path += "-successors"
	}
	if d.o.strict {
		path += "?strict=1"
	}
	if d.o.json {
		return d.c.do(ctx, http.MethodPost, path, r, d.out)
	}
	if d.o.successors {
		var rep ods.SuccessorReport
		if err := d.c.do(ctx, http.MethodPost, path, r, &rep); err != nil {
			return err
		}
		fmt.Fprintln(d.out, rep.Summary())
		if d.o.verbose && len(rep.Updated) > 0 {
			fmt.Fprintf(d.out, "successor set: %s\n", strings.Join(rep.Updated, " "))
		}
		if d.o.verbose && len(rep.Unknown) > 0 {
			fmt.Fprintf(d.out, "not in the directory: %s\n", strings.Join(rep.Unknown, " "))
		}
		for _, x := range rep.Rejected {
			fmt.Fprintf(d.out, "rejected: %s\n", x)
		}
		return nil
	}
	var rep ods.Report
	if err := d.c.do(ctx, http.MethodPost, path, r, &rep); err != nil {
		return err
	}
	writeImportReport(d.out, rep, d.o.verbose)
	return nil
}

func (d *dirCmd) verify(ctx context.Context, args []string) error {
	n := 0
	for _, set := range []bool{d.o.challenge, d.o.code != "", d.o.attest != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return errors.New("verify: give exactly one of -challenge, -code CODE or -attest EVIDENCE")
	}
	e, err := d.resolve(ctx, args[0])
	if err != nil {
		return err
	}
	base := dirAPI + "/endpoints/" + url.PathEscape(e.ID)
	e = directory.Endpoint{} // decode the answer afresh: empty fields are left out
	switch {
	case d.o.challenge:
		if err := d.c.do(ctx, http.MethodPost, base+"/challenge", nil, &e); err != nil {
			return err
		}
		fmt.Fprintf(d.out, "%s: a one-time code was sent to %s\n", e.ID, e.Address)
		fmt.Fprintf(d.out, "when its owner has it: nhsrelay directory verify -code CODE %s\n", e.ID)
		return nil
	case d.o.code != "":
		err = d.c.do(ctx, http.MethodPost, base+"/verify", map[string]string{"code": d.o.code}, &e)
	default:
		err = d.c.do(ctx, http.MethodPost, base+"/attest", map[string]string{"evidence": d.o.attest}, &e)
	}
	if err != nil {
		return err
	}
	if d.o.json {
		return d.printEndpoint(ctx, e)
	}
	fmt.Fprintf(d.out, "%s: %s verified by %s until %s\n", e.ID, e.Address, e.Verification.Method, dirDay(e.Verification.Expires))
	return nil
}

func (d *dirCmd) suspend(ctx context.Context, args []string) error {
	return d.setStatus(ctx, args[0], "suspend", "suspended")
}

func (d *dirCmd) retire(ctx context.Context, args []string) error {
	return d.setStatus(ctx, args[0], "retire", "retired")
}

func (d *dirCmd) setStatus(ctx context.Context, arg, action, done string) error {
	if strings.TrimSpace(d.o.reason) == "" {
		return fmt.Errorf("%s: -reason is required (senders and the audit log see it)", action)
	}
	e, err := d.resolve(ctx, arg)
	if err != nil {
		return err
	}
	path := dirAPI + "/endpoints/" + url.PathEscape(e.ID) + "/" + action
	e = directory.Endpoint{} // decode the answer afresh: empty fields are left out
	if err := d.c.do(ctx, http.MethodPost, path, map[string]string{"reason": d.o.reason}, &e); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "%s: %s %s: %s\n", e.ID, e.Address, done, e.StatusReason)
	return nil
}

func (d *dirCmd) redirect(ctx context.Context, args []string) error {
	e, err := d.resolve(ctx, args[0])
	if err != nil {
		return err
	}
	to := args[1]
	if to == "-" {
		to = ""
	}
	path := dirAPI + "/endpoints/" + url.PathEscape(e.ID) + "/redirect"
	e = directory.Endpoint{} // decode the answer afresh: empty fields are left out
	if err := d.c.do(ctx, http.MethodPost, path, map[string]string{"to": to}, &e); err != nil {
		return err
	}
	if e.Redirect == "" {
		fmt.Fprintf(d.out, "%s: %s: redirect removed\n", e.ID, e.Address)
	} else {
		fmt.Fprintf(d.out, "%s: %s: mail now goes to %s\n", e.ID, e.Address, e.Redirect)
	}
	return nil
}

// errCannotSend makes check exit 1 when the answer is no, as postmap -q
// does for a key it does not find.
var errCannotSend = errors.New("clinical mail to this address would not be sent")

func (d *dirCmd) check(ctx context.Context, args []string) error {
	var res directory.CheckResult
	path := dirAPI + "/check?" + url.Values{"address": {args[0]}}.Encode()
	if err := d.c.do(ctx, http.MethodGet, path, nil, &res); err != nil {
		return err
	}
	if d.o.json {
		if err := d.c.do(ctx, http.MethodGet, path, nil, d.out); err != nil {
			return err
		}
	} else {
		writeCheck(d.out, res)
	}
	if !res.OK {
		return errCannotSend
	}
	return nil
}

func (d *dirCmd) export(ctx context.Context, _ []string) error {
	q := url.Values{"format": {d.o.format}, "what": {d.o.what}}
	if d.o.output == "" || d.o.output == "-" {
		return d.c.do(ctx, http.MethodGet, dirAPI+"/export?"+q.Encode(), nil, d.out)
	}
	f, err := os.OpenFile(d.o.output, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = d.c.do(ctx, http.MethodGet, dirAPI+"/export?"+q.Encode(), nil, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name()) // leave no half export that looks whole
	}
	return err
}
