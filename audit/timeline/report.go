package timeline

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Report prints timelines as a fax machine prints its transmission
// report: the message, then one line per recipient saying plainly whether
// they have it, then every step with its time.
func Report(w io.Writer, msgs []Message) error {
	for i, m := range msgs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "TRANSMISSION REPORT  queue ID %s\n", m.QueueID)
		row := func(k, v string) {
			if v != "" {
				fmt.Fprintf(w, "  %-11s %s\n", k+":", v)
			}
		}
		row("Message-ID", m.MessageID)
		row("From", m.From)
		row("Account", m.Account)
		row("Client", m.ClientIP)
		if !m.Accepted.IsZero() {
			row("Accepted", stamp(m.Accepted))
		}
		if m.Size > 0 {
			row("Size", fmt.Sprintf("%d bytes", m.Size))
		}
		fmt.Fprintf(w, "  RESULT     %s\n", verdict(m))
		for _, r := range m.Recipients {
			mark := "not yet"
			switch {
			case r.Has():
				mark = "HAS IT"
			case r.State == StateFailed || r.State == StateQuarantined:
				mark = "WILL NOT"
			}
			fmt.Fprintf(w, "  %-9s %s  %s", mark, r.Address, r.State)
			if !r.Since.IsZero() {
				fmt.Fprintf(w, " %s", stamp(r.Since))
			}
			if r.Detail != "" {
				fmt.Fprintf(w, " — %s", oneLine(r.Detail))
			}
			if r.Read != "" {
				fmt.Fprintf(w, "; read receipt: %s", r.Read)
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, "  STEPS")
		for _, e := range m.Events {
			fmt.Fprintf(w, "  %s  %-20s %s\n", stamp(e.Time), e.Action, stepWords(e))
		}
	}
	return nil
}

func verdict(m Message) string {
	switch {
	case len(m.Recipients) == 0:
		return "no recipients recorded"
	case len(m.NotYet) == 0 && len(m.WillNot) == 0:
		return fmt.Sprintf("OK — all %d recipient(s) have it", len(m.Have))
	case len(m.NotYet) == 0:
		return fmt.Sprintf("%d of %d recipient(s) have it; %d will not", len(m.Have), len(m.Recipients), len(m.WillNot))
	}
	return fmt.Sprintf("%d of %d recipient(s) have it; %d not yet", len(m.Have), len(m.Recipients), len(m.NotYet))
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }

// stepWords is one step in words: the event's own words and the facts a
// reader of a transmission report wants.
func stepWords(e Event) string {
	parts := []string{}
	if e.Words != "" {
		parts = append(parts, e.Words)
	}
	for _, k := range []string{"rcpt", "remote", "tls", "peer", "reply", "alg", "signer_sha256", "cert_sha256",
		"account", "client_ip", "inbound", "mdn", "receipts", "envid", "dsn", "action", "dsn_id", "orig_message_id", "disposition", "reader", "reporting_mta", "reported", "actions"} {
		if v := e.Fields[k]; v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	if e.Endpoint != "" && e.Fields["rcpt"] == "" {
		parts = append(parts, "endpoint="+e.Endpoint)
	}
	return oneLine(strings.Join(parts, "; "))
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return s
}
