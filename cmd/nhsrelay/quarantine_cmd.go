package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"nhsrelay/relay/smimepolicy"
)

const quarantineUsage = `usage: nhsrelay quarantine [-c FILE] COMMAND

commands:
  list [-json]        every quarantined inbound message: sender, endpoint, reason
  show [-json] ID     one quarantine record
  release -reason WHY ID
                      deliver it to its endpoint's mailbox as it arrived, with a
                      header saying why it was quarantined, who released it and
                      WHY (audited)
  delete -reason WHY ID
                      remove it for good (audited)

Only the records are shown, never a message: it is clinical. An operator
with shell access on the relay host finds it, as it arrived, in
<data_dir>/quarantine/ID, encrypted at rest with the spool key.
`

// runQuarantine shows the running server's quarantine through the admin
// API: inbound S/MIME mail for hosted endpoints that was refused, and why.
func runQuarantine(args []string) error {
	return quarantineMain(context.Background(), args, os.Stdout)
}

func quarantineMain(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("quarantine", flag.ContinueOnError)
	path := configFlag(fs)
	cmd, rest, err := parseCommand(fs, quarantineUsage, args)
	if err != nil {
		return err
	}
	var wantArgs int
	switch cmd {
	case "list":
	case "show", "release", "delete":
		wantArgs = 1
	default:
		fs.Usage()
		return fmt.Errorf("unknown quarantine command %q", cmd)
	}
	sub := flag.NewFlagSet("quarantine "+cmd, flag.ContinueOnError)
	asJSON := sub.Bool("json", false, "print the server's JSON as is")
	reason := sub.String("reason", "", "why (release, delete): audited, and carried by a released message")
	pos, err := parseInterleaved(sub, rest) // "release ID -reason WHY" as well as "release -reason WHY ID"
	if err != nil {
		return err
	}
	if len(pos) != wantArgs {
		fs.Usage()
		return fmt.Errorf("quarantine %s: want %d argument(s), got %d", cmd, wantArgs, len(pos))
	}
	c, err := newAdminClient(*path)
	if err != nil {
		return err
	}
	switch cmd {
	case "list":
		return quarantineList(ctx, c, w, *asJSON)
	case "release", "delete":
		return quarantineAct(ctx, c, w, cmd, pos[0], *reason)
	}
	return quarantineShow(ctx, c, w, pos[0], *asJSON)
}

func quarantineList(ctx context.Context, c *adminClient, w io.Writer, asJSON bool) error {
	return getAndPrint(ctx, c, w, "/v1/quarantine", asJSON, decodeJSON[[]smimepolicy.Record]("quarantine list"),
		func(w io.Writer, recs []smimepolicy.Record) { writeQuarantine(w, recs, time.Local) })
}

// writeQuarantine prints recs as `queue list` prints the queue: a header,
// per record the quarantine ID, when it was quarantined and the sender,
// the reason in parentheses, then the endpoint it was for; then a total.
func writeQuarantine(w io.Writer, recs []smimepolicy.Record, loc *time.Location) {
	if len(recs) == 0 {
		fmt.Fprintln(w, "Quarantine is empty")
		return
	}
	idw := 15
	for _, r := range recs {
		idw = max(idw, len(r.ID)+1)
	}
	fmt.Fprintf(w, "%-*s %-20s %s\n", idw, "-Quarantine ID-", "--Quarantined At----", "-Sender/Endpoint-------")
	indent := strings.Repeat(" ", idw+1+20+1)
	for _, r := range recs {
		at := "-"
		if !r.At.IsZero() {
			at = r.At.In(loc).Format("Mon Jan _2 15:04:05")
		}
		fmt.Fprintf(w, "%-*s %-20s %s\n", idw, r.ID, at, senderName(r.From))
		if reason := strings.Join(strings.Fields(r.Reason), " "); reason != "" { // one line
			fmt.Fprintf(w, "(%s)\n", reason)
		}
		if r.Endpoint != "" {
			fmt.Fprintf(w, "%s%s\n", indent, r.Endpoint)
		}
		fmt.Fprintln(w)
	}
	s := "s"
	if len(recs) == 1 {
		s = ""
	}
	fmt.Fprintf(w, "-- %d message%s in quarantine.\n", len(recs), s)
}

// senderName shows the null sender as Postfix does.
func senderName(from string) string {
	if from == "" {
		return "MAILER-DAEMON"
	}
	return from
}

func quarantineShow(ctx context.Context, c *adminClient, w io.Writer, id string, asJSON bool) error {
	return getAndPrint(ctx, c, w, "/v1/quarantine/"+url.PathEscape(id), asJSON, decodeJSON[smimepolicy.Record]("quarantine record"),
		func(w io.Writer, r smimepolicy.Record) { writeQuarantineRecord(w, r, time.Local) })
}

// writeQuarantineRecord prints one record, one field a line.
func writeQuarantineRecord(w io.Writer, r smimepolicy.Record, loc *time.Location) {
	fmt.Fprintf(w, "id:          %s\n", r.ID)
	if r.QueueID != "" {
		fmt.Fprintf(w, "queue id:    %s\n", r.QueueID)
	}
	fmt.Fprintf(w, "endpoint:    %s\n", r.Endpoint)
	if r.From == "" {
		fmt.Fprintf(w, "from:        <> (null sender)\n")
	} else {
		fmt.Fprintf(w, "from:        %s\n", r.From)
	}
	if r.ClientIP != "" {
		fmt.Fprintf(w, "client:      %s\n", r.ClientIP)
	}
	if !r.Received.IsZero() {
		fmt.Fprintf(w, "received:    %s\n", r.Received.In(loc).Format(time.RFC3339))
	}
	if !r.At.IsZero() {
		fmt.Fprintf(w, "quarantined: %s\n", r.At.In(loc).Format(time.RFC3339))
	}
	fmt.Fprintf(w, "reason:      %s\n", strings.Join(strings.Fields(r.Reason), " "))
}

// quarantineAct releases or deletes one quarantined message through the
// admin API (POST /v1/quarantine/ID/release|delete).
func quarantineAct(ctx context.Context, c *adminClient, w io.Writer, action, id, reason string) error {
	if strings.TrimSpace(reason) == "" {
		return fmt.Errorf("quarantine %s: -reason WHY is required (the audit log keeps it%s)", action,
			map[bool]string{true: ", and the released message carries it", false: ""}[action == "release"])
	}
	var rec smimepolicy.Record
	path := "/v1/quarantine/" + url.PathEscape(id) + "/" + action
	if err := c.do(ctx, "POST", path, map[string]string{"reason": reason}, &rec); err != nil {
		return err
	}
	if action == "release" {
		fmt.Fprintf(w, "%s: delivered to %s (from %s, quarantined: %s)\n", rec.ID, rec.Endpoint, orNullSender(rec.From), rec.Reason)
	} else {
		fmt.Fprintf(w, "%s: deleted (was for %s from %s)\n", rec.ID, rec.Endpoint, orNullSender(rec.From))
	}
	return nil
}

func orNullSender(from string) string {
	if from == "" {
		return "<>"
	}
	return from
}
