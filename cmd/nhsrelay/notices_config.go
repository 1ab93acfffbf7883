package main

import (
	"fmt"
	"strings"
	"time"

	"nhsrelay/notices"
	"nhsrelay/notices/dkim"
)

// [notices]: appointment notices to patients (issue 11). Every key is
// documented in nhsrelay.example.toml and README.md.
type fileNotices struct {
	Listen        string            `toml:"http_listen"`
	DefaultFrom   string            `toml:"default_from"`
	LetterCutoff  string            `toml:"letter_cutoff"`
	RatePerDomain int               `toml:"rate_per_domain"`
	MTASTS        bool              `toml:"mta_sts"`
	DKIM          []fileDKIM        `toml:"dkim"`
	Organisations []fileNoticeOrg   `toml:"organisation"`
	Webhook       fileNoticeWebhook `toml:"webhook"`
}

type fileDKIM struct {
	Domain   string `toml:"domain"`
	Selector string `toml:"selector"`
	KeyFile  string `toml:"key_file"`
}

type fileNoticeOrg struct {
	ODS         string `toml:"ods"`
	From        string `toml:"from"`
	ReplyTo     string `toml:"reply_to"`
	Window      string `toml:"window"`
	TemplateDir string `toml:"template_dir"`
}

type fileNoticeWebhook struct {
	RetryFor string `toml:"retry_for"`
}

func defaultNotices() fileNotices {
	return fileNotices{LetterCutoff: "16:00", RatePerDomain: 600, MTASTS: true, Webhook: fileNoticeWebhook{RetryFor: "24h"}}
}

// noticesConfig is [notices] checked.
type noticesConfig struct {
	Listen          string `key:"notices.http_listen"` // "" disables notices
	DefaultFrom     string
	LetterCutoff    time.Duration
	RatePerDomain   int
	MTASTS          bool
	DKIM            []dkim.Key
	Orgs            map[string]notices.OrgSettings
	WebhookRetryFor time.Duration
}

func (v *validator) notices(f fileNotices) noticesConfig {
	c := noticesConfig{Listen: f.Listen, DefaultFrom: f.DefaultFrom, RatePerDomain: f.RatePerDomain, MTASTS: f.MTASTS,
		Orgs: map[string]notices.OrgSettings{}}
	v.listen("notices.http_listen", f.Listen)
	if d, err := time.Parse("15:04", f.LetterCutoff); err != nil {
		v.addf("notices.letter_cutoff", "%q is not a time of day like \"16:00\"", f.LetterCutoff)
	} else {
		c.LetterCutoff = time.Duration(d.Hour())*time.Hour + time.Duration(d.Minute())*time.Minute
	}
	v.positive("notices.rate_per_domain", int64(f.RatePerDomain))
	c.WebhookRetryFor = v.duration("notices.webhook.retry_for", f.Webhook.RetryFor, time.Minute)
	for i, k := range f.DKIM {
		key := fmt.Sprintf("notices.dkim[%d]", i)
		if k.Domain == "" || k.Selector == "" {
			v.addf(key, "needs domain and selector")
			continue
		}
		path := v.file(key+".key_file", k.KeyFile, true)
		if !v.ok(key + ".key_file") {
			continue
		}
		s, err := dkim.LoadKey(path)
		if err != nil {
			v.addf(key+".key_file", "%v", err)
			continue
		}
		c.DKIM = append(c.DKIM, dkim.Key{Domain: strings.ToLower(k.Domain), Selector: k.Selector, Signer: s})
	}
	for i, o := range f.Organisations {
		key := fmt.Sprintf("notices.organisation[%d]", i)
		ods := strings.ToUpper(strings.TrimSpace(o.ODS))
		if ods == "" {
			v.addf(key+".ods", "must be set")
			continue
		}
		w, err := notices.ParseWindow(o.Window)
		if err != nil {
			v.addf(key+".window", "%v", err)
		}
		if o.From != "" && !strings.Contains(o.From, "@") {
			v.addf(key+".from", "%q is not a mail address", o.From)
		}
		c.Orgs[ods] = notices.OrgSettings{From: o.From, ReplyTo: o.ReplyTo, Window: w, TemplateDir: v.path(o.TemplateDir)}
	}
	if c.Listen != "" && len(c.DKIM) == 0 {
		v.addf("notices.dkim", "notices.http_listen is set but no DKIM key is configured: notice mail is never sent unsigned (make one with `nhsrelay dkim keygen DOMAIN SELECTOR`)")
	}
	return c
}
