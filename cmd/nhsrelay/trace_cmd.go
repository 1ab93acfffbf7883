package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"time"

	"nhsrelay/audit/timeline"
)

const traceUsage = `usage: nhsrelay trace [-c FILE] [-since T] [-json] ID|MESSAGE-ID|RCPT

Prints the timeline of a message, like a fax machine's transmission report:
who sent it from where, how it was sealed, each delivery attempt (next hop,
TLS, the reply), receipts sent and received, and plainly which recipients
have it and which do not yet. Give a queue ID (as in "250 Ok: queued as
ID"), a Message-ID, or a recipient address (every message to it; -since
limits how far back, e.g. -since 24h or -since 2026-12-08). Asks the
running server's admin API; the timeline is built from the audit log.
`

func runTrace(args []string) error {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	path := configFlag(fs)
	since := fs.String("since", "", "only messages since `T` (RFC 3339, a date, or a duration back from now such as 24h)")
	asJSON := fs.Bool("json", false, "print the server's JSON as is")
	fs.Usage = func() { fmt.Fprint(fs.Output(), traceUsage); fs.PrintDefaults() }
	query, err := parseInterleaved(fs, args) // flags before or after the ID, as the usage line shows
	if err != nil {
		return err
	}
	if len(query) != 1 {
		fs.Usage()
		return fmt.Errorf("want one queue ID, Message-ID or recipient address, got %d", len(query))
	}
	if _, err := timeline.ParseSince(*since, time.Now()); err != nil {
		return fmt.Errorf("-since: %w", err)
	}
	c, err := newAdminClient(*path)
	if err != nil {
		return err
	}
	return trace(context.Background(), c, os.Stdout, query[0], *since, *asJSON)
}

func trace(ctx context.Context, c *adminClient, w io.Writer, query, since string, asJSON bool) error {
	p := "/v1/messages/" + url.PathEscape(query)
	if since != "" {
		p += "?since=" + url.QueryEscape(since)
	}
	var out struct {
		Messages []timeline.Message `json:"messages"`
	}
	if err := c.do(ctx, "GET", p, nil, &out); err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	return timeline.Report(w, out.Messages)
}
