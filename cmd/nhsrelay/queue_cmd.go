package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"nhsrelay/relay/queue"
)

const queueUsage = `usage: nhsrelay queue [-c FILE] COMMAND

commands:
  list [-json]        every queued message, as postqueue -p shows them
  show [-json] ID     one message and each recipient's delivery state
  retry ID            attempt delivery of ID now
  delete ID           remove ID and its body from the queue (audited)
`

// runQueue talks to the running server's admin API, as postqueue and
// postsuper talk to the Postfix master.
func runQueue(args []string) error {
	fs := flag.NewFlagSet("queue", flag.ContinueOnError)
	path := configFlag(fs)
	cmd, rest, err := parseCommand(fs, queueUsage, args)
	if err != nil {
		return err
	}
	sub := flag.NewFlagSet("queue "+cmd, flag.ContinueOnError)
	asJSON := sub.Bool("json", false, "print the server's JSON as is")
	if err := sub.Parse(rest); err != nil {
		return err
	}
	wantArgs := 1
	if cmd == "list" {
		wantArgs = 0
	}
	if sub.NArg() != wantArgs {
		fs.Usage()
		return fmt.Errorf("queue %s: want %d argument(s), got %d", cmd, wantArgs, sub.NArg())
	}
	c, err := newAdminClient(*path)
	if err != nil {
		return err
	}
	ctx := context.Background()
	switch cmd {
	case "list":
		return queueList(ctx, c, os.Stdout, *asJSON)
	case "show":
		return queueShow(ctx, c, os.Stdout, sub.Arg(0), *asJSON)
	case "retry":
		if err := c.do(ctx, http.MethodPost, "/v1/queue/"+url.PathEscape(sub.Arg(0))+"/retry", nil, nil); err != nil {
			return err
		}
		fmt.Printf("%s: scheduled for delivery now\n", sub.Arg(0))
		return nil
	case "delete":
		if err := c.do(ctx, http.MethodDelete, "/v1/queue/"+url.PathEscape(sub.Arg(0)), nil, nil); err != nil {
			return err
		}
		fmt.Printf("%s: deleted\n", sub.Arg(0))
		return nil
	default:
		fs.Usage()
		return fmt.Errorf("unknown queue command %q", cmd)
	}
}

func queueList(ctx context.Context, c *adminClient, w io.Writer, asJSON bool) error {
	return getAndPrint(ctx, c, w, "/v1/queue", asJSON, decodeMessages,
		func(w io.Writer, msgs []queue.Message) { writePostqueue(w, msgs, time.Local) })
}

// decodeMessages reads the list the admin API returns: a JSON array of
// queue.Message, or an object holding it under "messages".
func decodeMessages(data []byte) ([]queue.Message, error) {
	var msgs []queue.Message
	if err := json.Unmarshal(data, &msgs); err == nil {
		return msgs, nil
	}
	var wrapped struct {
		Messages []queue.Message `json:"messages"`
	}
	if err := json.Unmarshal(data, &wrapped); err != nil {
		return nil, fmt.Errorf("decode queue list: %w", err)
	}
	return wrapped.Messages, nil
}

// writePostqueue prints msgs as `postqueue -p` does (Postfix showq): a
// header, per message the ID (with '!' when a recipient is held), size,
// arrival time and sender, then each undelivered recipient, under the last
// error it met in parentheses; then a total.
func writePostqueue(w io.Writer, msgs []queue.Message, loc *time.Location) {
	if len(msgs) == 0 {
		fmt.Fprintln(w, "Mail queue is empty")
		return
	}
	idw := 10
	for _, m := range msgs {
		idw = max(idw, len(m.ID)+1)
	}
	fmt.Fprintf(w, "%-*s %8s %-20s %s\n", idw, "-Queue ID-", "--Size--", "----Arrival Time----", "-Sender/Recipient-------")
	var total int64
	for _, m := range msgs {
		total += m.Size
		id := m.ID
		for _, r := range m.Recipients {
			if r.State == queue.Held {
				id += "!" // Postfix marks messages on hold with '!'
				break
			}
		}
		from := m.From
		if from == "" {
			from = "MAILER-DAEMON" // the null sender, as Postfix shows it
		}
		fmt.Fprintf(w, "%-*s %8d %-20s %s\n", idw, id, m.Size, m.Received.In(loc).Format("Mon Jan _2 15:04:05"), from)
		indent := strings.Repeat(" ", idw+1+8+1+20+1)
		lastErr := ""
		for _, r := range m.Recipients {
			if r.State == queue.Delivered {
				continue
			}
			if e := recipientError(r); e != "" && e != lastErr {
				fmt.Fprintf(w, "(%s)\n", e)
				lastErr = e
			}
			fmt.Fprintf(w, "%s%s\n", indent, r.Address)
		}
		fmt.Fprintln(w)
	}
	s := "s"
	if len(msgs) == 1 {
		s = ""
	}
	fmt.Fprintf(w, "-- %d Kbytes in %d Request%s.\n", (total+1023)/1024, len(msgs), s)
}

// recipientError is what the list shows in parentheses for r.
func recipientError(r queue.Recipient) string {
	e := strings.Join(strings.Fields(r.LastError), " ") // one line
	switch {
	case r.State == queue.Held && e == "":
		e = "held"
	case r.State == queue.Failed && e == "":
		e = "failed"
	}
	if e != "" && r.LastCode != "" && !strings.Contains(e, r.LastCode) {
		e = r.LastCode + " " + e
	}
	return e
}

func queueShow(ctx context.Context, c *adminClient, w io.Writer, id string, asJSON bool) error {
	return getAndPrint(ctx, c, w, "/v1/queue/"+url.PathEscape(id), asJSON, decodeJSON[queue.Message]("message"),
		func(w io.Writer, m queue.Message) { writeMessage(w, m, time.Local) })
}

// writeMessage prints one message, one field a line, then a block per
// recipient.
func writeMessage(w io.Writer, m queue.Message, loc *time.Location) {
	from := m.From
	if from == "" {
		from = "<> (null sender)"
	}
	fmt.Fprintf(w, "id:        %s\n", m.ID)
	fmt.Fprintf(w, "from:      %s\n", from)
	if m.Account != "" {
		fmt.Fprintf(w, "account:   %s\n", m.Account)
	}
	if m.ClientIP != "" {
		fmt.Fprintf(w, "client:    %s\n", m.ClientIP)
	}
	if m.Inbound {
		fmt.Fprintf(w, "inbound:   yes (arrived on the MX listener)\n")
	}
	fmt.Fprintf(w, "received:  %s\n", m.Received.In(loc).Format(time.RFC3339))
	fmt.Fprintf(w, "size:      %d bytes\n", m.Size)
	for _, r := range m.Recipients {
		fmt.Fprintf(w, "\nrecipient: %s\n", r.Address)
		fmt.Fprintf(w, "  state:        %s\n", r.State)
		fmt.Fprintf(w, "  attempts:     %d\n", r.Attempts)
		if r.State == queue.Queued && !r.NextAttempt.IsZero() {
			fmt.Fprintf(w, "  next attempt: %s\n", r.NextAttempt.In(loc).Format(time.RFC3339))
		}
		if r.LastError != "" || r.LastCode != "" {
			fmt.Fprintf(w, "  last error:   %s\n", strings.TrimSpace(r.LastCode+" "+r.LastError))
		}
		if r.DelayNotified {
			fmt.Fprintf(w, "  delay notice: sent\n")
		}
	}
}
