package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"nhsrelay/faxbridge"
	"nhsrelay/faxbridge/faxtiff"
	"nhsrelay/internal/durable"
)

const faxUsage = `usage: nhsrelay fax [-c FILE] COMMAND

commands:
  convert IN.tif OUT.pdf     a received fax as PDF (cover page + pages), standalone
  convert -o DIR IN.tif...   many at once, in parallel: DIR/IN.pdf for each
  ingest --hylafax QFILE DEVID COMMID REASON [CALLID...]
                             HylaFAX faxrcvd hook: hand a received fax to the bridge
                             (exits non-zero when it cannot store, so HylaFAX keeps it)
  deadletter list [-json]    faxes that could not be routed, with the reason
  deadletter reroute REF [-to ADDRESS]
                             send a dead letter on (to ADDRESS, or by its number again)
  report [-json|-csv]        who still faxes: per sender, per week; could they send securely?
  server list|add NAME|revoke NAME
                             credentials of fax servers that POST /v1/faxes
`

func runFax(args []string) error {
	fs := flag.NewFlagSet("fax", flag.ContinueOnError)
	path := configFlag(fs)
	cmd, rest, err := parseCommand(fs, faxUsage, args)
	if err != nil {
		return err
	}
	ctx := context.Background()
	switch cmd {
	case "convert":
		if len(rest) >= 2 && rest[0] == "-o" {
			return faxConvertAll(rest[1], rest[2:], os.Stderr)
		}
		if len(rest) != 2 {
			fs.Usage()
			return errors.New("fax convert: want IN.tif OUT.pdf, or -o DIR IN.tif …")
		}
		return faxConvert(rest[0], rest[1], os.Stderr)
	case "ingest":
		return faxIngest(*path, rest, os.Stderr)
	case "deadletter":
		return faxDeadLetter(ctx, *path, rest)
	case "report":
		return faxReport(ctx, *path, rest)
	case "server":
		return faxServer(ctx, *path, rest)
	}
	fs.Usage()
	return fmt.Errorf("unknown fax command %q", cmd)
}

// faxConvert writes in as a PDF; problems with pages are printed to
// warn and named on the cover page.
func faxConvert(in, out string, warn io.Writer) error {
	data, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	d, err := faxbridge.Decode(data, faxtiff.Limits{})
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	for _, p := range d.Problems {
		fmt.Fprintf(warn, "%s: %s\n", in, p)
	}
	received := time.Now()
	if fi, err := os.Stat(in); err == nil {
		received = fi.ModTime()
	}
	pdf, err := faxbridge.Render(d, faxbridge.CoverInfo{Received: received, Ref: filepath.Base(in)})
	if err != nil {
		return err
	}
	return os.WriteFile(out, pdf, 0o600)
}

// faxConvertAll converts each input to DIR/<name>.pdf, as many at once
// as there are processors; it reports every failure and fails if any did.
func faxConvertAll(dir string, ins []string, warn io.Writer) error {
	if len(ins) == 0 {
		return errors.New("fax convert -o: no input files")
	}
	jobs := make(chan string)
	errs := make(chan error, len(ins))
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(ins)) {
		wg.Go(func() {
			for in := range jobs {
				out := filepath.Join(dir, strings.TrimSuffix(filepath.Base(in), filepath.Ext(in))+".pdf")
				if err := faxConvert(in, out, io.Discard); err != nil {
					errs <- err
				}
			}
		})
	}
	for _, in := range ins {
		jobs <- in
	}
	close(jobs)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		fmt.Fprintln(warn, err)
		all = append(all, err)
	}
	return errors.Join(all...)
}

// faxIngest is the HylaFAX faxrcvd hook: `faxrcvd qfile devid commid
// reason callid1 ... callidN`. It drops the fax and a sidecar into
// fax.spool_dir (durable.WriteFile: file and folder fsynced) for the server to pick up.
func faxIngest(configPath string, args []string, warn io.Writer) error {
	fs := flag.NewFlagSet("fax ingest", flag.ContinueOnError)
	hylafax := fs.Bool("hylafax", false, "arguments are HylaFAX faxrcvd's: QFILE DEVID COMMID REASON [CALLID...]")
	didArg := fs.Int("did-callid", -1, "which CALLID `N` (1-based) is the number dialled; default fax.hylafax_did_callid")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !*hylafax || fs.NArg() < 4 {
		return errors.New("fax ingest: want --hylafax QFILE DEVID COMMID REASON [CALLID...]")
	}
	cfg, err := loadConfig(configPath)
	if err != nil {
		return err
	}
	if cfg.Fax.SpoolDir == "" {
		return errors.New("fax ingest: fax.spool_dir is not set, so there is nowhere to hand the fax over")
	}
	qfile, devid, commid, reason, callids := fs.Arg(0), fs.Arg(1), fs.Arg(2), fs.Arg(3), fs.Args()[4:]
	sc := faxbridge.Sidecar{Source: "hylafax", Received: time.Now().UTC()}
	n := cfg.Fax.HylaFAXDIDCallID
	if *didArg >= 0 {
		n = *didArg
	}
	if n > 0 && n <= len(callids) {
		sc.Called = callids[n-1]
	} else {
		sc.Called = cfg.Fax.HylaFAXNumber
	}
	// CallIDPattern order: the calling number and name come first.
	if len(callids) > 0 && n != 1 {
		sc.Calling = callids[0]
	}
	if len(callids) > 1 && n != 2 {
		sc.CallerName = callids[1]
	}
	base := "hylafax-" + safeName(devid) + "-" + safeName(commid)
	data, err := os.ReadFile(qfile)
	switch {
	case err != nil && reason != "" && errors.Is(err, iofs.ErrNotExist):
		sc.Failed = reason // a failed reception: record it, there is no image
	case err != nil:
		return fmt.Errorf("fax ingest: read %s: %w", qfile, err)
	case reason != "":
		sc.Quality = "the fax server reports: " + reason
	}
	if err := durable.MkdirAll(cfg.Fax.SpoolDir, 0o700, durable.SyncDir); err != nil {
		return fmt.Errorf("fax ingest: %w", err)
	}
	side, _ := json.Marshal(sc)
	if err := durable.WriteFile(filepath.Join(cfg.Fax.SpoolDir, base+".json"), side); err != nil {
		return fmt.Errorf("fax ingest: %w", err)
	}
	if data != nil {
		if err := durable.WriteFile(filepath.Join(cfg.Fax.SpoolDir, base+".tif"), data); err != nil {
			os.Remove(filepath.Join(cfg.Fax.SpoolDir, base+".json"))
			return fmt.Errorf("fax ingest: %w", err)
		}
	}
	fmt.Fprintf(warn, "fax ingest: %s handed to the fax bridge as %s\n", qfile, base)
	return nil
}

// safeName keeps letters, digits, - and _ of a HylaFAX id.
func safeName(s string) string {
	s = strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
	if s == "" {
		s = "x"
	}
	return s[:min(len(s), 40)]
}

func faxDeadLetter(ctx context.Context, configPath string, args []string) error {
	if len(args) < 1 {
		return errors.New("fax deadletter: want list or reroute REF")
	}
	sub := flag.NewFlagSet("fax deadletter "+args[0], flag.ContinueOnError)
	asJSON := sub.Bool("json", false, "print the server's JSON as is")
	to := sub.String("to", "", "endpoint `address` (or ID) to send the fax to; default: by its number again")
	if err := sub.Parse(args[1:]); err != nil {
		return err
	}
	var refs []string // flags may follow the reference too
	for sub.NArg() > 0 {
		refs = append(refs, sub.Arg(0))
		if err := sub.Parse(sub.Args()[1:]); err != nil {
			return err
		}
	}
	c, err := newAdminClient(configPath)
	if err != nil {
		return err
	}
	switch args[0] {
	case "list":
		return getAndPrint(ctx, c, os.Stdout, "/v1/faxes/deadletters", *asJSON, decodeJSON[[]faxbridge.DeadLetter]("dead letters"),
			func(w io.Writer, dls []faxbridge.DeadLetter) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "REF\tRECEIVED\tDIALLED\tFROM\tPAGES\tREASON")
				for _, d := range dls {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", d.Ref, d.Received.Local().Format("2006-01-02 15:04"),
						dash(d.Called), dash(firstOf(d.Calling, d.CSI)), d.Pages, d.Reason)
				}
				tw.Flush()
			})
	case "reroute":
		if len(refs) != 1 {
			return errors.New("fax deadletter reroute: want REF")
		}
		var out faxbridge.Outcome
		err := c.do(ctx, http.MethodPost, "/v1/faxes/deadletters/"+url.PathEscape(refs[0])+"/reroute",
			map[string]string{"to": *to}, &out)
		if err != nil {
			return err
		}
		if out.Outcome == faxbridge.OutcomeDeadLetter {
			return fmt.Errorf("%s is still a dead letter: %s", refs[0], out.Reason)
		}
		fmt.Printf("%s: %s (queue ID %s)\n", refs[0], out.Outcome, out.QueueID)
		return nil
	}
	return fmt.Errorf("unknown fax deadletter command %q", args[0])
}

func faxReport(ctx context.Context, configPath string, args []string) error {
	sub := flag.NewFlagSet("fax report", flag.ContinueOnError)
	asJSON := sub.Bool("json", false, "print the server's JSON as is")
	asCSV := sub.Bool("csv", false, "CSV, one line per sender and week")
	if err := sub.Parse(args); err != nil {
		return err
	}
	c, err := newAdminClient(configPath)
	if err != nil {
		return err
	}
	if *asCSV {
		return c.do(ctx, http.MethodGet, "/v1/faxes/report?format=csv", nil, os.Stdout)
	}
	return getAndPrint(ctx, c, os.Stdout, "/v1/faxes/report", *asJSON, decodeJSON[[]faxbridge.ReportRow]("report"),
		func(w io.Writer, rows []faxbridge.ReportRow) {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SENDER\tORGANISATION\tFAXES\tPAGES\tFIRST SEEN\tLAST SEEN\tSECURE TODAY")
			for _, r := range rows {
				secure := "no"
				if r.CouldSendSecurely {
					secure = "yes: " + r.SecureEndpoint
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\n", r.Sender, dash(strings.TrimSpace(r.Organisation+" "+r.ODS)),
					r.Faxes, r.Pages, r.FirstSeen.Local().Format("2006-01-02"), r.LastSeen.Local().Format("2006-01-02"), secure)
			}
			tw.Flush()
		})
}

func faxServer(ctx context.Context, configPath string, args []string) error {
	if len(args) < 1 || (args[0] != "list" && len(args) != 2) {
		return errors.New("fax server: want list, add NAME or revoke NAME")
	}
	c, err := newAdminClient(configPath)
	if err != nil {
		return err
	}
	switch args[0] {
	case "list":
		var ss []faxbridge.Server
		if err := c.do(ctx, http.MethodGet, "/v1/faxes/servers", nil, &ss); err != nil {
			return err
		}
		for _, s := range ss {
			state := "active"
			if !s.Revoked.IsZero() {
				state = "revoked " + s.Revoked.Local().Format("2006-01-02 15:04")
			}
			fmt.Printf("%s\tcreated %s\t%s\n", s.Name, s.Created.Local().Format("2006-01-02 15:04"), state)
		}
		return nil
	case "add":
		var out struct{ Token string }
		if err := c.do(ctx, http.MethodPost, "/v1/faxes/servers", map[string]string{"name": args[1]}, &out); err != nil {
			return err
		}
		fmt.Printf("fax server %s added; its token (shown once, send as \"Authorization: Bearer TOKEN\"):\n%s\n", args[1], out.Token)
		return nil
	case "revoke":
		if err := c.do(ctx, http.MethodDelete, "/v1/faxes/servers/"+url.PathEscape(args[1]), nil, nil); err != nil {
			return err
		}
		fmt.Printf("fax server %s revoked\n", args[1])
		return nil
	}
	return fmt.Errorf("unknown fax server command %q", args[0])
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
