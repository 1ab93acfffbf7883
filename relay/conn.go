package relay

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net"
	"net/textproto"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"nhsrelay/directory"
)

// smtpConn is an open, greeted SMTP session to a next hop.
type smtpConn struct {
	client   *smtp.Client
	raw      net.Conn // the TCP (or TLS) connection, for deadlines
	host     string   // the name we verified or dialled, for Remote-MTA
	lastUsed time.Time
	tls      string // negotiated TLS version, "" for plain (the timeline's record of each attempt)
	peer     string // the verified peer certificate: "CN=…; sha256=…"
}

func (c *smtpConn) close() { c.client.Close() }

// quit ends the session politely (RFC 5321 §4.1.1.10), briefly bounded.
func (c *smtpConn) quit() {
	c.raw.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.client.Quit(); err != nil {
		c.client.Close()
	}
}

// openError is a failed connection attempt; final means trying the next
// candidate host cannot help.
type openError struct {
	result result
	final  bool
}

const sessionTimeout = 5 * time.Minute // RFC 5321 §4.5.3.2: 5 minutes for greeting and most replies

// open dials hostport and returns a session ready for MAIL: over STARTTLS
// verified for the host name, or, only when mode is TLSPlainLoopback and
// the address dialled is loopback, over plain SMTP. Any other mode,
// unknown ones included, requires verified TLS.
func (r *Relay) open(ctx context.Context, hostport string, mode directory.TLSMode) (*smtpConn, *openError) {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, &openError{result: failure(temporary, 4, 4, "bad next-hop address "+hostport), final: true}
	}
	conn, err := r.cfg.Dial(ctx, "tcp", hostport)
	if err != nil {
		return nil, &openError{result: failure(temporary, 4, 1, "cannot connect to "+hostport)} // RFC 3463 §3.5 X.4.1
	}
	if mode == directory.TLSPlainLoopback {
		if !isLoopback(conn.RemoteAddr()) {
			conn.Close()
			return nil, &openError{final: true, result: failure(temporary, 7, 0,
				"refused plain SMTP to "+hostport+": the directory allows plain only to a loopback next hop, and "+
					conn.RemoteAddr().String()+" is not loopback")}
		}
		c := smtp.NewClient(conn)
		if err := c.Hello(r.cfg.Hostname); err != nil {
			c.Close()
			res, _ := replyResult(err, "greeting/EHLO")
			return nil, &openError{result: res}
		}
		return &smtpConn{client: c, raw: conn, host: host}, nil
	}
	tlsConn, oerr := r.startTLS(ctx, conn, host)
	if oerr != nil {
		conn.Close()
		return nil, oerr
	}
	// The greeting was read before STARTTLS; go-smtp's client expects one,
	// so it is given a stand-in and then says EHLO again over TLS as
	// RFC 3207 §4.2 requires.
	c := smtp.NewClient(&greetedConn{Conn: tlsConn, greeting: "220 " + host + " TLS\r\n"})
	if err := c.Hello(r.cfg.Hostname); err != nil {
		c.Close()
		res, _ := replyResult(err, "EHLO after STARTTLS")
		return nil, &openError{result: res}
	}
	sc := &smtpConn{client: c, raw: tlsConn, host: host}
	st := tlsConn.ConnectionState()
	sc.tls = tls.VersionName(st.Version)
	if len(st.PeerCertificates) > 0 {
		sum := sha256.Sum256(st.PeerCertificates[0].Raw)
		sc.peer = "CN=" + st.PeerCertificates[0].Subject.CommonName + "; sha256=" + hex.EncodeToString(sum[:])
	}
	return sc, nil
}

// startTLS reads the greeting, says EHLO, requires STARTTLS (RFC 3207) and
// completes a TLS 1.2+ handshake verifying the certificate for host
// against RootCAs. There is no fallback to plain text.
func (r *Relay) startTLS(ctx context.Context, conn net.Conn, host string) (*tls.Conn, *openError) {
	deadline := time.Now().Add(sessionTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetDeadline(deadline)
	tp := textproto.NewConn(conn)
	fail := func(err error, stage string) *openError {
		var pe *textproto.Error
		if errors.As(err, &pe) {
			res, _ := replyResult(&smtp.SMTPError{Code: pe.Code, Message: pe.Msg}, stage)
			res.outcome, res.status = temporary, "4"+res.status[1:] // try later or another MX
			return &openError{result: res}
		}
		return &openError{result: netFailure(err, stage)}
	}
	if _, _, err := tp.ReadResponse(220); err != nil {
		return nil, fail(err, "greeting")
	}
	if err := tp.PrintfLine("EHLO %s", r.cfg.Hostname); err != nil {
		return nil, fail(err, "EHLO")
	}
	_, msg, err := tp.ReadResponse(250)
	if err != nil {
		return nil, fail(err, "EHLO")
	}
	if !hasExtension(msg, "STARTTLS") {
		tp.PrintfLine("QUIT")
		return nil, &openError{result: failure(temporary, 7, 10, host+" does not offer STARTTLS; "+
			"TLS is required for this next hop, so nothing was sent")} // RFC 5248 X.7.10 encryption needed
	}
	if err := tp.PrintfLine("STARTTLS"); err != nil {
		return nil, fail(err, "STARTTLS")
	}
	if _, _, err := tp.ReadResponse(220); err != nil {
		return nil, fail(err, "STARTTLS")
	}
	// Anything the server sent after its 220 was sent in clear and would be
	// read as if it came over TLS (CVE-2011-0411 class): refuse.
	if tp.R.Buffered() > 0 {
		return nil, &openError{result: failure(temporary, 7, 0, host+" sent data after its STARTTLS reply; refused")}
	}
	tc := tls.Client(conn, &tls.Config{
		ServerName: host,
		RootCAs:    r.cfg.RootCAs,
		MinVersion: tls.VersionTLS12,
	})
	if err := tc.HandshakeContext(ctx); err != nil {
		var verr *tls.CertificateVerificationError
		if errors.As(err, &verr) {
			return nil, &openError{result: failure(temporary, 7, 5,
				"TLS certificate of "+host+" could not be verified ("+shortTLSError(verr)+"); nothing was sent")} // RFC 3463 §3.8 X.7.5
		}
		return nil, &openError{result: failure(temporary, 7, 5, "TLS handshake with "+host+" failed; nothing was sent")}
	}
	conn.SetDeadline(time.Time{})
	return tc, nil
}

func shortTLSError(e *tls.CertificateVerificationError) string {
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var inv x509.CertificateInvalidError
	switch {
	case errors.As(e.Err, &ua):
		return "issued by an authority we do not trust"
	case errors.As(e.Err, &hn):
		return "issued for another host name"
	case errors.As(e.Err, &inv):
		return "expired or not valid for this use"
	default:
		return oneLine(e.Err.Error())
	}
}

// hasExtension looks for a keyword in an EHLO reply's lines after the first
// (RFC 5321 §4.1.1.1).
func hasExtension(msg, ext string) bool {
	lines := strings.Split(msg, "\n")
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 0 && strings.EqualFold(f[0], ext) {
			return true
		}
	}
	return false
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// greetedConn returns a stand-in greeting before the connection's data.
type greetedConn struct {
	net.Conn
	greeting string
}

func (g *greetedConn) Read(p []byte) (int, error) {
	if g.greeting != "" {
		n := copy(p, g.greeting)
		g.greeting = g.greeting[n:]
		return n, nil
	}
	return g.Conn.Read(p)
}
