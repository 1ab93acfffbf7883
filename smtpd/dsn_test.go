package smtpd

import (
	"reflect"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"nhsrelay/relay"
)

// TestDSNParametersReachTheQueue: every listener offers DSN (RFC 3461),
// and RET, ENVID, NOTIFY and ORCPT reach the queue with each recipient,
// in RCPT order.
func TestDSNParametersReachTheQueue(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	c := ts.submitClient(t)
	if ok, _ := c.Extension("DSN"); !ok {
		t.Fatal("submission does not offer DSN")
	}
	if err := c.Mail(own, &smtp.MailOptions{Return: smtp.DSNReturnFull, EnvelopeID: "QQ314159"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(remote, &smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifySuccess, smtp.DSNNotifyFailure},
		OriginalRecipientType: smtp.DSNAddressTypeRFC822, OriginalRecipient: remote}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(hosted, &smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifyNever}}); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(message(own)))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	env := ts.queue.all()[0].env
	if env.Ret != "FULL" || env.EnvID != "QQ314159" {
		t.Errorf("RET %q ENVID %q, want FULL QQ314159", env.Ret, env.EnvID)
	}
	want := []relay.RcptDSN{{Notify: []string{"SUCCESS", "FAILURE"}, ORcpt: "RFC822;" + remote}, {Notify: []string{"NEVER"}}}
	if !reflect.DeepEqual(env.RcptDSN, want) {
		t.Errorf("RcptDSN = %+v, want %+v", env.RcptDSN, want)
	}

	// The MX listener offers it too; a bad NOTIFY is refused with a reason.
	rc := greeted(t, ts.mx)
	rc.send("EHLO client.nhs.example\r\n")
	if all := strings.Join(rc.replyAll(), "\n"); !strings.Contains(all, "DSN") {
		t.Errorf("MX EHLO does not offer DSN:\n%s", all)
	}
	rc.want("MAIL FROM:<x@other.nhs.example> RET=HDRS", "250")
	rc.want("RCPT TO:<"+hosted+"> NOTIFY=NEVER,SUCCESS", "501")
}

// TestAccountReceiptsDefault: an account set to "always" gets a success
// notice for every recipient when its client sets no NOTIFY, and keeps an
// explicit NOTIFY; "never" takes SUCCESS out.
func TestAccountReceiptsDefault(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		receipts string
		notify   []smtp.DSNNotify
		want     []string
	}{
		{"always", nil, []string{"SUCCESS", "FAILURE", "DELAY"}},
		{"always", []smtp.DSNNotify{smtp.DSNNotifyNever}, []string{"NEVER"}},
		{"on-request", nil, nil},
		{"", []smtp.DSNNotify{smtp.DSNNotifySuccess}, []string{"SUCCESS"}},
		{"never", []smtp.DSNNotify{smtp.DSNNotifySuccess, smtp.DSNNotifyDelayed}, []string{"DELAY"}},
		{"never", []smtp.DSNNotify{smtp.DSNNotifySuccess}, []string{"NEVER"}},
	} {
		t.Run(tc.receipts+"/"+strings.Join(tc.want, ","), func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, func(c *Config) { c.Directory = fakeDir{receipts: tc.receipts} })
			c := ts.submitClient(t)
			if err := c.Mail(own, nil); err != nil {
				t.Fatal(err)
			}
			if err := c.Rcpt(remote, &smtp.RcptOptions{Notify: tc.notify}); err != nil {
				t.Fatal(err)
			}
			w, err := c.Data()
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte(message(own)))
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if got := ts.queue.all()[0].env.RcptDSN[0].Notify; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("receipts %q, NOTIFY %v: queued NOTIFY %v, want %v", tc.receipts, tc.notify, got, tc.want)
			}
		})
	}
}
