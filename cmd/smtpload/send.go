package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// sendConfig is what one `smtpload send` run does.
type sendConfig struct {
	addr     string
	sessions int
	messages int
	length   int
	from, to string
	subject  string
	reuse    bool        // -d: several messages per connection
	tls      *tls.Config // nil: plain SMTP
	user     string      // -auth: AUTH PLAIN as user with pass, after STARTTLS
	pass     string
	timeout  time.Duration
	notify   []smtp.DSNNotify // -notify: RCPT NOTIFY= (RFC 3461), sent when the server offers DSN
}

func runSend(args []string) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	var c sendConfig
	fs.IntVar(&c.sessions, "s", 1, "parallel sessions")
	fs.IntVar(&c.messages, "m", 1, "messages in all")
	fs.IntVar(&c.length, "l", 4096, "payload bytes per message")
	fs.StringVar(&c.from, "f", "smtpload@bench.localhost", "envelope sender")
	fs.StringVar(&c.to, "t", "sink@bench.localhost", "envelope recipient")
	fs.StringVar(&c.subject, "S", "", "subject (none when empty)")
	fs.BoolVar(&c.reuse, "d", false, "send the next message over the same connection")
	startTLS := fs.Bool("starttls", false, "STARTTLS before MAIL; the certificate must verify")
	caFile := fs.String("cafile", "", "PEM `file` of CAs the server certificate must chain to (default: system roots)")
	serverName := fs.String("servername", "", "name to verify in the server certificate (default: the host of ADDR)")
	auth := fs.String("auth", "", "`user:password` for AUTH PLAIN (RFC 4616), only with -starttls")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Minute, "give up on a command after this long")
	notify := fs.String("notify", "", "`list` for RCPT NOTIFY= (RFC 3461): SUCCESS,FAILURE,DELAY or NEVER; empty sends none (smtp-source cannot)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for n := range strings.SplitSeq(*notify, ",") {
		switch v := smtp.DSNNotify(strings.ToUpper(strings.TrimSpace(n))); v {
		case "":
		case smtp.DSNNotifySuccess, smtp.DSNNotifyFailure, smtp.DSNNotifyDelayed, smtp.DSNNotifyNever:
			c.notify = append(c.notify, v)
		default:
			return fmt.Errorf("-notify: %q is not SUCCESS, FAILURE, DELAY or NEVER", n)
		}
	}
	if *auth != "" {
		var ok bool
		if c.user, c.pass, ok = strings.Cut(*auth, ":"); !ok || c.user == "" {
			return errors.New("-auth wants user:password")
		}
		if !*startTLS {
			return errors.New("-auth needs -starttls: a password is never sent in clear")
		}
	}
	if fs.NArg() != 1 {
		return errors.New("want exactly one HOST:PORT")
	}
	c.addr = fs.Arg(0)
	if c.sessions < 1 || c.messages < 1 || c.length < 0 {
		return errors.New("-s and -m must be positive and -l not negative")
	}
	if *startTLS {
		host, _, err := net.SplitHostPort(c.addr)
		if err != nil {
			return fmt.Errorf("address %q: %w", c.addr, err)
		}
		if *serverName != "" {
			host = *serverName
		}
		c.tls = &tls.Config{
			ServerName: host,
			MinVersion: tls.VersionTLS12,
			// Resumption, as a real client keeping its session cache; it
			// spares both relays the same full handshake per message.
			ClientSessionCache: tls.NewLRUClientSessionCache(256),
		}
		if *caFile != "" {
			pem, err := os.ReadFile(*caFile)
			if err != nil {
				return fmt.Errorf("read CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return fmt.Errorf("%s: no PEM certificates", *caFile)
			}
			c.tls.RootCAs = pool
		}
	}
	start := time.Now()
	sent, err := send(c)
	elapsed := time.Since(start)
	fmt.Printf("smtpload send: %d of %d messages accepted in %.3fs (%.1f msg/s)\n",
		sent, c.messages, elapsed.Seconds(), float64(sent)/elapsed.Seconds())
	return err
}

// send runs c.sessions workers that together send c.messages messages and
// returns how many were accepted (250 after DATA). It stops at the first
// failure, as smtp-source does, and returns that failure.
func send(c sendConfig) (int64, error) {
	var (
		next, accepted atomic.Int64
		firstErr       error
		errOnce        sync.Once
		stop           atomic.Bool
		wg             sync.WaitGroup
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		stop.Store(true)
	}
	pid := os.Getpid()
	for w := range c.sessions {
		wg.Go(func() {
			var cl *smtp.Client
			defer func() {
				if cl != nil {
					cl.Quit()
				}
			}()
			for !stop.Load() {
				n := next.Add(1)
				if n > int64(c.messages) {
					return
				}
				if cl == nil {
					var err error
					if cl, err = dial(c); err != nil {
						fail(fmt.Errorf("session %d: %w", w, err))
						return
					}
				}
				id := fmt.Sprintf("%d.%d@smtpload.localhost", pid, n)
				msg := buildMessage(c.from, c.to, c.subject, id, c.length, time.Now())
				if err := sendOne(cl, c, msg); err != nil {
					cl.Close()
					cl = nil
					fail(fmt.Errorf("session %d, message %d: %w", w, n, err))
					return
				}
				accepted.Add(1)
				if !c.reuse {
					if err := cl.Quit(); err != nil {
						fail(fmt.Errorf("session %d: QUIT: %w", w, err))
						cl = nil
						return
					}
					cl = nil
				}
			}
		})
	}
	wg.Wait()
	return accepted.Load(), firstErr
}

// dial connects and reads the greeting; with c.tls it says EHLO and
// STARTTLS (go-smtp says EHLO again after TLS, RFC 3207 §4.2). The client
// introduces itself as "localhost".
func dial(c sendConfig) (*smtp.Client, error) {
	conn, err := net.DialTimeout("tcp", c.addr, 30*time.Second)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	var cl *smtp.Client
	if c.tls != nil {
		cl, err = smtp.NewClientStartTLS(conn, c.tls)
		if err != nil {
			return nil, fmt.Errorf("STARTTLS: %w", err)
		}
	} else {
		cl = smtp.NewClient(conn)
	}
	cl.CommandTimeout = c.timeout
	cl.SubmissionTimeout = c.timeout
	if c.user != "" {
		// RFC 4954 over the TLS session: the clinical submission path.
		if err := cl.Auth(sasl.NewPlainClient("", c.user, c.pass)); err != nil {
			cl.Close()
			return nil, fmt.Errorf("AUTH: %w", err)
		}
	}
	return cl, nil
}

// sendOne is one transaction: SendMail, with the DSN request on RCPT.
func sendOne(cl *smtp.Client, c sendConfig, msg []byte) error {
	if len(c.notify) == 0 {
		return cl.SendMail(c.from, []string{c.to}, bytes.NewReader(msg))
	}
	if err := cl.Mail(c.from, nil); err != nil {
		return err
	}
	if err := cl.Rcpt(c.to, &smtp.RcptOptions{Notify: c.notify}); err != nil {
		return err
	}
	w, err := cl.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
