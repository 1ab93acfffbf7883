package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"nhsrelay/notices"
	"nhsrelay/notices/dnscheck"
)

const noticesUsage = `usage: nhsrelay notices [-c FILE] COMMAND [ARGS]

Appointment notices (through the running server's admin API, except dns-check).

commands:
  credential add -name NAME -org ODS [-org ODS]... [-webhook URL]
                           a sending system's credential, scoped to its
                           organisations; prints the token (and webhook
                           secret) once
  credential list [-json]  every credential, revoked ones too
  credential revoke ID     end a credential at once (audited)
  letters [-status pending|in-run|printed|cancelled] [-json]
                           the print queue
  print-run [-o FILE]      one run of every letter queued before the cut-off;
                           writes its combined PDF
  printed RUN              mark a run's letters printed
  cancel-letter REFERENCE  take a letter out of the queue before its run
  dns-check [-resolver HOST:PORT] DOMAIN
                           which SPF, DKIM and DMARC records DOMAIN needs to
                           send notices, and which it has; exit 1 if any is
                           missing or wrong
`

func runNotices(args []string) error {
	return noticesMain(context.Background(), args, os.Stdout)
}

func noticesMain(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("notices", flag.ContinueOnError)
	path := configFlag(fs)
	cmd, rest, err := parseCommand(fs, noticesUsage, args)
	if err != nil {
		return err
	}
	if cmd == "dns-check" {
		return dnsCheckMain(ctx, *path, rest, w)
	}
	if cmd == "credential" && len(rest) > 0 {
		cmd, rest = "credential "+rest[0], rest[1:]
	}
	sub := flag.NewFlagSet("notices "+cmd, flag.ContinueOnError)
	asJSON := sub.Bool("json", false, "print the server's JSON as is")
	name := sub.String("name", "", "the sending system's name")
	webhook := sub.String("webhook", "", "URL told of every status change")
	status := sub.String("status", "pending", "letters in this state; \"\" for all")
	out := sub.String("o", "", "write the PDF here (default RUN.pdf)")
	var orgs multiFlag
	sub.Var(&orgs, "org", "ODS code the credential may send for (repeat)")
	if err := sub.Parse(rest); err != nil {
		return err
	}
	c, err := newAdminClient(*path)
	if err != nil {
		return err
	}
	switch cmd {
	case "credential add":
		var res struct {
			Credential    notices.Credential `json:"credential"`
			Token         string             `json:"token"`
			WebhookSecret string             `json:"webhook_secret"`
		}
		body := map[string]any{"name": *name, "organisations": []string(orgs), "webhook": *webhook}
		if err := c.do(ctx, http.MethodPost, "/v1/notice-credentials", body, &res); err != nil {
			return err
		}
		fmt.Fprintf(w, "credential %s (%s) for %s\ntoken (shown once): %s\n", res.Credential.ID, res.Credential.Name,
			strings.Join(res.Credential.Organisations, ", "), res.Token)
		if res.WebhookSecret != "" {
			fmt.Fprintf(w, "webhook secret (shown once): %s\n", res.WebhookSecret)
		}
		return nil
	case "credential list":
		return getAndPrint(ctx, c, w, "/v1/notice-credentials", *asJSON, decodeJSON[[]notices.Credential]("credentials"),
			func(w io.Writer, cs []notices.Credential) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tORGANISATIONS\tCREATED\tREVOKED")
				for _, x := range cs {
					rev := "-"
					if !x.Revoked.IsZero() {
						rev = x.Revoked.Local().Format(time.DateTime)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", x.ID, x.Name, strings.Join(x.Organisations, ","), x.Created.Local().Format(time.DateTime), rev)
				}
				tw.Flush()
			})
	case "credential revoke", "printed", "cancel-letter":
		if sub.NArg() != 1 {
			return fmt.Errorf("notices %s: want one argument", cmd)
		}
		method, p := http.MethodPost, "/v1/notice-credentials/"+sub.Arg(0)+"/revoke"
		if cmd == "printed" {
			p = "/v1/letters/print-runs/" + sub.Arg(0) + "/printed"
		} else if cmd == "cancel-letter" {
			method, p = http.MethodDelete, "/v1/letters/"+sub.Arg(0)
		}
		if err := c.do(ctx, method, p, nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(w, "%s: done\n", sub.Arg(0))
		return nil
	case "letters":
		return getAndPrint(ctx, c, w, "/v1/letters?status="+*status, *asJSON, decodeJSON[[]notices.LetterView]("letters"),
			func(w io.Writer, ls []notices.LetterView) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "REFERENCE\tORGANISATION\tSTATE\tQUEUED\tREASON")
				for _, l := range ls {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.Reference, l.Organisation, l.State, l.Queued.Local().Format(time.DateTime), l.Reason)
				}
				tw.Flush()
				fmt.Fprintf(w, "%d letter(s)\n", len(ls))
			})
	case "print-run":
		var run notices.PrintRun
		if err := c.do(ctx, http.MethodPost, "/v1/letters/print-runs", nil, &run); err != nil {
			return err
		}
		f := *out
		if f == "" {
			f = run.ID + ".pdf"
		}
		fh, err := os.OpenFile(f, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		defer fh.Close()
		if err := c.do(ctx, http.MethodGet, "/v1/letters/print-runs/"+run.ID+"/pdf", nil, fh); err != nil {
			return err
		}
		fmt.Fprintf(w, "print run %s: %d letter(s) in %s; after printing: nhsrelay notices printed %s\n", run.ID, len(run.References), f, run.ID)
		return nil
	}
	fs.Usage()
	return fmt.Errorf("unknown notices command %q", cmd)
}

func dnsCheckMain(ctx context.Context, configPath string, args []string, w io.Writer) error {
	sub := flag.NewFlagSet("notices dns-check", flag.ContinueOnError)
	server := sub.String("resolver", "", "ask this DNS server (HOST:PORT) instead of the system's")
	if err := sub.Parse(args); err != nil {
		return err
	}
	if sub.NArg() != 1 {
		return fmt.Errorf("notices dns-check: want one DOMAIN")
	}
	cfg, err := loadConfig(configPath)
	if err != nil {
		return err
	}
	r := net.DefaultResolver
	if *server != "" {
		r = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, *server)
		}}
	}
	recs := dnscheck.Check(ctx, r, sub.Arg(0), cfg.Hostname, cfg.Notices.DKIM)
	bad := 0
	for _, rec := range recs {
		fmt.Fprintf(w, "%-5s %-13s %s\n", rec.Kind, rec.State, rec.Name)
		for _, p := range rec.Present {
			fmt.Fprintf(w, "      present: %s\n", p)
		}
		if rec.State != dnscheck.OK && rec.Want != "" {
			fmt.Fprintf(w, "      needed:  %s\n", rec.Want)
		}
		if rec.Advice != "" {
			fmt.Fprintf(w, "      %s\n", rec.Advice)
		}
		if rec.State != dnscheck.OK {
			bad++
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d record(s) missing or wrong", bad)
	}
	return nil
}
