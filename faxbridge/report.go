package faxbridge

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"nhsrelay/directory"
)

// ReportRow is one sender that still faxes: by calling number (or CSI
// where the caller ID was withheld), with the organisation where the
// directory knows the number, and whether that organisation already has
// a verified secure endpoint, so it "could send this securely today".
type ReportRow struct {
	Sender            string      `json:"sender"`
	ODS               string      `json:"ods,omitempty"`
	Organisation      string      `json:"organisation,omitempty"`
	CouldSendSecurely bool        `json:"could_send_securely"`
	SecureEndpoint    string      `json:"secure_endpoint,omitempty"`
	Faxes             int         `json:"faxes"`
	Pages             int         `json:"pages"`
	FirstSeen         time.Time   `json:"first_seen"`
	LastSeen          time.Time   `json:"last_seen"`
	Weeks             []WeekCount `json:"weeks"`
}

// WeekCount is one ISO 8601 week's faxes and pages.
type WeekCount struct {
	Week  string `json:"week"` // "2026-W49"
	Faxes int    `json:"faxes"`
	Pages int    `json:"pages"`
}

// Report counts every fax received (failed receptions aside) by sender,
// busiest sender first.
func (b *Bridge) Report(ctx context.Context) ([]ReportRow, error) {
	rows := map[string]*ReportRow{}
	weeks := map[string]map[string]*WeekCount{}
	err := b.state.records(func(r Record) {
		if r.Outcome == OutcomeFailed {
			return
		}
		s := sender(r.Calling, r.CSI)
		if s == "" {
			s = "unknown"
		}
		row := rows[s]
		if row == nil {
			row = &ReportRow{Sender: s, FirstSeen: r.Received, LastSeen: r.Received}
			rows[s], weeks[s] = row, map[string]*WeekCount{}
		}
		row.Faxes++
		row.Pages += r.Pages
		if r.Received.Before(row.FirstSeen) {
			row.FirstSeen = r.Received
		}
		if r.Received.After(row.LastSeen) {
			row.LastSeen = r.Received
		}
		y, wk := r.Received.ISOWeek()
		key := fmt.Sprintf("%d-W%02d", y, wk)
		wc := weeks[s][key]
		if wc == nil {
			wc = &WeekCount{Week: key}
			weeks[s][key] = wc
		}
		wc.Faxes++
		wc.Pages += r.Pages
	})
	if err != nil {
		return nil, fmt.Errorf("faxbridge: report: %w", err)
	}
	out := make([]ReportRow, 0, len(rows))
	for s, row := range rows {
		for _, wc := range weeks[s] {
			row.Weeks = append(row.Weeks, *wc)
		}
		sort.Slice(row.Weeks, func(i, j int) bool { return row.Weeks[i].Week < row.Weeks[j].Week })
		b.identify(ctx, row)
		out = append(out, *row)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Faxes != out[j].Faxes {
			return out[i].Faxes > out[j].Faxes
		}
		return out[i].Sender < out[j].Sender
	})
	return out, nil
}

// identify fills in the sender's organisation from the directory (an
// endpoint that lists the number as its fax) and any verified endpoint of
// that organisation that may receive clinical mail now.
func (b *Bridge) identify(ctx context.Context, row *ReportRow) {
	ep, err := b.cfg.Directory.ByFax(ctx, row.Sender)
	if err != nil {
		return
	}
	row.ODS = ep.ODS
	if o, err := b.cfg.Directory.Organisation(ctx, ep.ODS); err == nil {
		row.Organisation = o.Name
	}
	for _, e := range b.cfg.Directory.Endpoints(ctx, directory.Filter{ODS: ep.ODS}) {
		if ok, _ := b.cfg.Directory.Usable(e); ok && e.Status == directory.StatusVerified {
			row.CouldSendSecurely, row.SecureEndpoint = true, e.Address
			return
		}
	}
}

// WriteReportCSV writes rows as CSV, one line per sender and week.
func WriteReportCSV(w io.Writer, rows []ReportRow) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"sender", "ods", "organisation", "could_send_securely", "secure_endpoint",
		"faxes", "pages", "first_seen", "last_seen", "week", "week_faxes", "week_pages"})
	for _, r := range rows {
		for _, wk := range r.Weeks {
			cw.Write([]string{r.Sender, r.ODS, r.Organisation, strconv.FormatBool(r.CouldSendSecurely), r.SecureEndpoint,
				strconv.Itoa(r.Faxes), strconv.Itoa(r.Pages), r.FirstSeen.UTC().Format(time.RFC3339),
				r.LastSeen.UTC().Format(time.RFC3339), wk.Week, strconv.Itoa(wk.Faxes), strconv.Itoa(wk.Pages)})
		}
	}
	cw.Flush()
	return cw.Error()
}
