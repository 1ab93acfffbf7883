package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// sink accepts and discards mail, counting whole messages.
type sink struct {
	requireTLS bool // refuse MAIL before STARTTLS, so a relay cannot fall back to plain
	count      int64
	received   atomic.Int64
	done       chan time.Time // gets the time of the count-th message, once
}

func runSink(args []string) error {
	fs := flag.NewFlagSet("sink", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "loopback `address` to listen on")
	count := fs.Int64("count", 1, "exit after this many messages")
	certFile := fs.String("cert", "", "PEM certificate `file`; with -key, STARTTLS is offered and required")
	keyFile := fs.String("key", "", "PEM private key `file`")
	doneFile := fs.String("done-file", "", "write the Unix time in ns of the last message here")
	addrFile := fs.String("addr-file", "", "write the address listened on here")
	timeout := fs.Duration("timeout", 10*time.Minute, "fail if the messages have not all arrived by then")
	dsn := fs.Bool("dsn", false, "offer the DSN extension (RFC 3461), as a relay that reports delivery itself")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *count < 1 {
		return errors.New("-count must be positive")
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return fmt.Errorf("-listen %q: %w", *listen, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-listen %q: a test sink listens on loopback only", *listen)
	}
	s := &sink{count: *count, done: make(chan time.Time, 1)}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &sinkSession{s: s, conn: c}, nil
	}))
	srv.Domain = "smtpload-sink.localhost"
	srv.EnableDSN = *dsn
	srv.ReadTimeout = 5 * time.Minute
	srv.WriteTimeout = 5 * time.Minute
	srv.ErrorLog = log.New(os.Stderr, "smtpload sink: ", log.LstdFlags)
	if *certFile != "" || *keyFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return fmt.Errorf("load certificate: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		s.requireTLS = true
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile, []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
			return fmt.Errorf("write address file: %w", err)
		}
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case at := <-s.done:
		if *doneFile != "" {
			if err := os.WriteFile(*doneFile, []byte(strconv.FormatInt(at.UnixNano(), 10)+"\n"), 0o644); err != nil {
				return fmt.Errorf("write done file: %w", err)
			}
		}
		fmt.Printf("smtpload sink: %d messages received\n", s.received.Load())
		time.Sleep(200 * time.Millisecond) // let the last 250 reach the client
		srv.Close()
		return nil
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-time.After(*timeout):
		srv.Close()
		return fmt.Errorf("%d of %d messages after %v", s.received.Load(), s.count, *timeout)
	}
}

// sinkSession is one SMTP session; it accepts every sender and recipient,
// over TLS only when the sink has a certificate.
type sinkSession struct {
	s    *sink
	conn *smtp.Conn
}

func (*sinkSession) Reset()        {}
func (*sinkSession) Logout() error { return nil }
func (ss *sinkSession) Mail(string, *smtp.MailOptions) error {
	if _, ok := ss.conn.TLSConnectionState(); ss.s.requireTLS && !ok {
		// RFC 3207 §4: 530 5.7.0 Must issue a STARTTLS command first.
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Must issue a STARTTLS command first"}
	}
	return nil
}
func (*sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (ss *sinkSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	if ss.s.received.Add(1) == ss.s.count {
		ss.s.done <- time.Now()
	}
	return nil
}
