package main

// fileReceipts is the [receipts] table (issue 12: proof of delivery).
type fileReceipts struct {
	// StatusListen is the senders' status API: HTTPS (the SMTP
	// certificate), HTTP Basic with the sending account's SMTP username
	// and password, GET /v1/messages/{id} and /v1/messages?rcpt= showing
	// only that account's messages. "" disables it.
	StatusListen string `toml:"status_listen"`
}

func (v *validator) receipts(c *config, r fileReceipts) {
	c.StatusListen = r.StatusListen
	v.listen("receipts.status_listen", r.StatusListen)
}
