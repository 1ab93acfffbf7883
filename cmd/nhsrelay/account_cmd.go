package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"nhsrelay/directory/api"
)

const accountUsage = `usage: nhsrelay account [-c FILE] COMMAND [ARGS]

Manage the sender accounts that log in (SMTP AUTH) on 587 and 465, on the
running server, through its admin API (as directory and queue do; the
server holds the store, keeps the login cache right and audits each change).

commands:
  add USER -owns ADDR [ADDR...] [-org ODS] [-note TEXT]
      [-receipts always|on-request|never] [-kind notice]
                             create an account; prints its generated password
                             once. Each ADDR must be an endpoint of the
                             organisation (default: the first ADDR's).
                             -kind notice: an appointment system's account,
                             sending plain patient emails (issue 11)
  set USER [-receipts always|on-request|never] [-note TEXT]
                             change its receipts setting or note
  list [-json]               accounts, one a line
  show [-json] USER          one account
  passwd [-stdin] USER       set a new generated password and print it once;
                             -stdin: read the password from standard input
  disable -reason WHY USER   refuse its logins and mail at once; AUTH, MAIL and
                             RCPT replies quote WHY
  enable USER                let it log in again
  delete USER                remove it; first disable it and let its queued
                             mail go (queued mail is signed for the account's
                             organisation at delivery)
  owns USER +ADDR|-ADDR...   add or remove addresses it may send from

Flags may come before or after the arguments.
`

// runAccount talks to the running server's admin API, as mox's
// setaccountpassword talks to mox: the server owns the directory store
// (bbolt allows one process), drops the login cache on each change and
// writes the audit record under one chain.
func runAccount(args []string) error {
	return accountMain(context.Background(), args, os.Stdout, os.Stdin)
}

func accountMain(ctx context.Context, args []string, stdout io.Writer, stdin io.Reader) error {
	fs := flag.NewFlagSet("account", flag.ContinueOnError)
	path := configFlag(fs)
	cmd, rest, err := parseCommand(fs, accountUsage, args)
	if err != nil {
		return err
	}
	a := &accountCmd{out: stdout, in: stdin}
	run, err := a.parse(cmd, rest)
	if err != nil {
		return err
	}
	if a.c, err = newAdminClient(*path); err != nil {
		return err
	}
	return run(ctx)
}

// accountCmd is one run of an account subcommand.
type accountCmd struct {
	c   *adminClient
	out io.Writer
	in  io.Reader

	user, org, note, receipts, reason, kind string
	owns                                    multiFlag
	add, remove                             []string
	json, stdin, setNote                    bool
}

// parse reads the subcommand's flags and arguments and returns what runs it.
func (a *accountCmd) parse(cmd string, args []string) (func(context.Context) error, error) {
	fs := flag.NewFlagSet("account "+cmd, flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), accountUsage) }
	want := 1 // USER
	var run func(context.Context) error
	switch cmd {
	case "add":
		fs.Var(&a.owns, "owns", "`address` the account may send from (repeatable; more may follow USER)")
		fs.StringVar(&a.org, "org", "", "ODS `code` of the organisation (default: the first address's)")
		fs.StringVar(&a.note, "note", "", "a `note` for administrators")
		fs.StringVar(&a.receipts, "receipts", "", "success DSNs: always, on-request (default) or never")
		fs.StringVar(&a.kind, "kind", "", "`notice` for an appointment system that sends plain patient emails (DKIM, never S/MIME); default: a clinical sender")
		want, run = -1, a.addAccount
	case "set":
		fs.Func("note", "a `note` for administrators (\"\" clears it)", func(s string) error { a.note, a.setNote = s, true; return nil })
		fs.StringVar(&a.receipts, "receipts", "", "success DSNs: always, on-request or never")
		run = a.set
	case "list":
		fs.BoolVar(&a.json, "json", false, "print the server's JSON")
		want, run = 0, a.list
	case "show":
		fs.BoolVar(&a.json, "json", false, "print the server's JSON")
		run = a.show
	case "passwd":
		fs.BoolVar(&a.stdin, "stdin", false, "read the new password from standard input (one line)")
		run = a.passwd
	case "disable":
		fs.StringVar(&a.reason, "reason", "", "why, in words the sender's mail client will show (required)")
		run = a.disable
	case "enable":
		run = a.enable
	case "delete":
		run = a.del
	case "owns":
		return a.ownsArgs(args)
	default:
		fmt.Fprint(os.Stderr, accountUsage)
		return nil, fmt.Errorf("unknown account command %q", cmd)
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, err
	}
	switch {
	case want == -1 && len(pos) >= 1: // add: USER [ADDR...]
		a.owns = append(a.owns, pos[1:]...)
	case len(pos) != want && want == 0:
		return nil, fmt.Errorf("account %s takes no arguments, got %q", cmd, pos)
	case len(pos) != want:
		return nil, fmt.Errorf("account %s: want USER, got %d argument(s)", cmd, len(pos))
	}
	if len(pos) > 0 {
		a.user = pos[0]
	}
	return run, nil
}

// ownsArgs parses "USER +ADDR -ADDR ..." by hand: "-ADDR" is an
// argument here, not a flag.
func (a *accountCmd) ownsArgs(args []string) (func(context.Context) error, error) {
	if len(args) < 2 {
		return nil, errors.New("account owns: want USER and at least one +ADDR or -ADDR")
	}
	a.user = args[0]
	for _, s := range args[1:] {
		switch {
		case strings.HasPrefix(s, "+") && len(s) > 1:
			a.add = append(a.add, s[1:])
		case strings.HasPrefix(s, "-") && len(s) > 1:
			a.remove = append(a.remove, s[1:])
		default:
			return nil, fmt.Errorf("account owns: %q: write +ADDR to add an address or -ADDR to remove one", s)
		}
	}
	return a.changeOwns, nil
}

const accountsAPI = "/v1/accounts"

func (a *accountCmd) userPath(suffix string) string {
	return accountsAPI + "/" + url.PathEscape(a.user) + suffix
}

func (a *accountCmd) addAccount(ctx context.Context) error {
	if a.user == "" || len(a.owns) == 0 {
		return errors.New("account add: want USER and -owns ADDR (at least one address to send from)")
	}
	var owns []string
	for _, o := range a.owns { // "-owns a,b" as well as "-owns a -owns b"
		for _, s := range strings.Split(o, ",") {
			if s = strings.TrimSpace(s); s != "" {
				owns = append(owns, s)
			}
		}
	}
	in := map[string]any{"username": a.user, "addresses": owns, "ods": a.org, "note": a.note, "receipts": a.receipts, "kind": a.kind}
	var out api.AccountPassword
	if err := a.c.do(ctx, http.MethodPost, accountsAPI, in, &out); err != nil {
		return err
	}
	fmt.Fprintf(a.out, "account %s added for %s, sends as %s\n", out.Account.Username, out.Account.ODS, strings.Join(out.Account.Addresses, ", "))
	writeNewPassword(a.out, out.Password)
	return nil
}

// writeNewPassword prints a generated password, the one time it is seen.
func writeNewPassword(w io.Writer, pw string) {
	fmt.Fprintf(w, "password: %s\n", pw)
	fmt.Fprintln(w, "The password is shown only now; the relay keeps only a bcrypt hash of it.")
}

// set changes the receipts setting or note: the account as it is, with
// those replaced, PUT back (organisation and addresses unchanged).
func (a *accountCmd) set(ctx context.Context) error {
	if a.receipts == "" && !a.setNote {
		return errors.New("account set: give -receipts or -note")
	}
	var cur api.Account
	if err := a.c.do(ctx, http.MethodGet, a.userPath(""), nil, &cur); err != nil {
		return err
	}
	in := map[string]any{"ods": cur.ODS, "addresses": cur.Addresses, "note": cur.Note, "receipts": cur.Receipts}
	if a.receipts != "" {
		in["receipts"] = a.receipts
	}
	if a.setNote {
		in["note"] = a.note
	}
	var out api.Account
	if err := a.c.do(ctx, http.MethodPut, a.userPath(""), in, &out); err != nil {
		return err
	}
	fmt.Fprintf(a.out, "account %s: receipts %s, note %s\n", out.Username, receiptsText(out.Receipts), dirDash(out.Note))
	return nil
}

func (a *accountCmd) list(ctx context.Context) error {
	return getAndPrint(ctx, a.c, a.out, accountsAPI, a.json, decodeJSON[api.AccountList]("accounts"),
		func(w io.Writer, l api.AccountList) { writeAccounts(w, l.Accounts) })
}

func (a *accountCmd) show(ctx context.Context) error {
	return getAndPrint(ctx, a.c, a.out, a.userPath(""), a.json, decodeJSON[api.Account]("account"), writeAccount)
}

func (a *accountCmd) passwd(ctx context.Context) error {
	in := map[string]string{}
	if a.stdin {
		line, err := bufio.NewReader(a.in).ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return fmt.Errorf("account passwd: read the password from standard input: %w", err)
		}
		in["password"] = strings.TrimRight(line, "\r\n")
	}
	var out api.AccountPassword
	if err := a.c.do(ctx, http.MethodPost, a.userPath("/password"), in, &out); err != nil {
		return err
	}
	fmt.Fprintf(a.out, "account %s: password changed; the old one no longer logs in\n", out.Account.Username)
	if out.Password != "" {
		writeNewPassword(a.out, out.Password)
	}
	return nil
}

func (a *accountCmd) disable(ctx context.Context) error {
	if strings.TrimSpace(a.reason) == "" {
		return errors.New("account disable: -reason WHY is required; the sender's mail client shows it")
	}
	return a.action(ctx, "/disable", map[string]string{"reason": a.reason}, "disabled: logins and mail are refused with the reason")
}

func (a *accountCmd) enable(ctx context.Context) error {
	return a.action(ctx, "/enable", nil, "enabled: it may log in again")
}

func (a *accountCmd) changeOwns(ctx context.Context) error {
	in := map[string][]string{"add": a.add, "remove": a.remove}
	var out api.AccountPassword
	if err := a.c.do(ctx, http.MethodPost, a.userPath("/owns"), in, &out); err != nil {
		return err
	}
	fmt.Fprintf(a.out, "account %s sends as %s\n", out.Account.Username, strings.Join(out.Account.Addresses, ", "))
	return nil
}

func (a *accountCmd) action(ctx context.Context, suffix string, in any, done string) error {
	var out api.AccountPassword
	if err := a.c.do(ctx, http.MethodPost, a.userPath(suffix), in, &out); err != nil {
		return err
	}
	fmt.Fprintf(a.out, "account %s %s\n", out.Account.Username, done)
	return nil
}

func (a *accountCmd) del(ctx context.Context) error {
	if err := a.c.do(ctx, http.MethodDelete, a.userPath(""), nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(a.out, "account %s deleted\n", a.user)
	return nil
}

// writeAccounts prints a table, as postqueue and directory list do.
func writeAccounts(w io.Writer, as []api.Account) {
	writeTable(w, "account", "USER\tODS\tSTATE\tRECEIPTS\tADDRESSES\tNOTE", as, func(tw io.Writer, a api.Account) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Username, dirDash(a.ODS), accountState(a),
			receiptsText(a.Receipts), strings.Join(a.Addresses, ", "), dirDash(a.Note))
	})
}

// writeAccount prints one account as "key: value" lines, like postconf.
func writeAccount(w io.Writer, a api.Account) {
	fmt.Fprintf(w, "username: %s\n", a.Username)
	fmt.Fprintf(w, "organisation: %s\n", dirDash(a.ODS))
	fmt.Fprintf(w, "addresses: %s\n", strings.Join(a.Addresses, ", "))
	fmt.Fprintf(w, "kind: %s\n", accountKindText(a.Kind))
	fmt.Fprintf(w, "state: %s\n", accountState(a))
	if a.Disabled {
		fmt.Fprintf(w, "disabled because: %s\n", dirDash(a.DisabledReason))
	}
	fmt.Fprintf(w, "receipts: %s\n", receiptsText(a.Receipts))
	fmt.Fprintf(w, "note: %s\n", dirDash(a.Note))
	fmt.Fprintf(w, "created: %s\n", dirDay(a.Created))
	fmt.Fprintf(w, "password set: %s\n", dirDay(a.PasswordSet))
}

func accountKindText(k string) string {
	if k == "" {
		return "clinical sender (S/MIME, directory endpoints only)"
	}
	return k + " (patient emails, DKIM-signed, addresses outside the directory only)"
}

func accountState(a api.Account) string {
	if a.Disabled {
		return "disabled"
	}
	return "active"
}

func receiptsText(r string) string {
	if r == "" {
		return "on-request"
	}
	return r
}
