package smtpd

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
)

// STARTTLS (RFC 3207) is done here, below go-smtp, not by go-smtp: wireConn
// takes the client's STARTTLS line out of the stream go-smtp reads,
// answers 220, runs the handshake on the socket and from then on reads
// and writes through the TLS layer, exactly as on 465. go-smtp never
// learns of it (Server.TLSConfig is nil), so it never wraps the
// connection in a TLS layer of its own, and everything it writes and
// reads stays visible here in plaintext for the whole session: the
// synchronisation checks, the bare CR/LF scan of DATA and our reply texts
// (replies.go) hold after STARTTLS too.
//
// go-smtp keeps its state across our STARTTLS, so RFC 3207 §4.2's "discard
// any knowledge obtained from the client" is enforced here: until the
// client sends EHLO again (which go-smtp answers with a reset, as after
// RSET), MAIL, RCPT, DATA and AUTH are refused (needEHLO). AUTH is only
// offered once TLS is up (session.AuthMechanisms).

// starttlsLine reports whether b starts with a whole STARTTLS command line
// (case-insensitive, no parameters), and how long that line is; prefix
// is true when b could still become one.
func starttlsLine(b []byte) (n int, whole, prefix bool) {
	const cmd = "STARTTLS"
	i := 0
	for ; i < len(b) && i < len(cmd); i++ {
		if b[i]&^0x20 != cmd[i] {
			return 0, false, false
		}
	}
	if i < len(cmd) {
		return 0, false, true
	}
	rest := b[i:]
	for j, c := range rest {
		switch c {
		case ' ':
			continue
		case '\r':
			if j+1 == len(rest) {
				return 0, false, true
			}
			if rest[j+1] == '\n' {
				return i + j + 2, true, false
			}
			return 0, false, false
		case '\n':
			return i + j + 1, true, false
		default:
			return 0, false, false // parameters: go-smtp answers, replies.go words it
		}
	}
	return 0, false, true
}

// offersSTARTTLS: plaintext so far, and a certificate to offer.
func (w *wireConn) offersSTARTTLS() bool {
	return w.tlsConn == nil && w.srv.cfg.TLS != nil && w.mode != SubmissionTLS
}

// readCommands reads commands from the plaintext socket into p, passing
// up everything before a STARTTLS command line and doing STARTTLS for that
// line once go-smtp has answered what came before it (RFC 2920 §3.1 lets
// STARTTLS end a pipelined group; nothing may follow it before the 220).
func (w *wireConn) readCommands(p []byte) (int, error) {
	for {
		if len(w.held) > 0 {
			if cut := w.cutAtSTARTTLS(w.held); cut > 0 {
				return w.passUp(p, cut), nil
			}
			ln, whole, prefix := starttlsLine(w.held)
			switch {
			case whole && len(w.held) > ln:
				w.refuseSync("data sent after STARTTLS before the TLS handshake (RFC 3207 §4)")
				return 0, net.ErrClosed
			case whole:
				w.held = nil
				if err := w.startTLS(); err != nil {
					return 0, err
				}
				return w.conn().Read(p) // the next command, through TLS
			case !prefix: // not STARTTLS after all
				return w.passUp(p, len(w.held)), nil
			}
		}
		if w.rbuf == nil {
			w.rbuf = make([]byte, 4096)
		}
		n, err := w.Conn.Read(w.rbuf)
		w.held = append(w.held, w.rbuf[:n]...)
		if err != nil {
			if len(w.held) == 0 {
				return 0, err
			}
			return w.passUp(p, len(w.held)), nil // the error comes again on the next read
		}
	}
}

// passUp moves the first n held bytes to go-smtp: into p, the rest of the
// n into pending.
func (w *wireConn) passUp(p []byte, n int) int {
	m := copy(p, w.held[:n])
	w.pending = append(w.pending, w.held[m:n]...)
	w.held = append([]byte(nil), w.held[n:]...)
	return m
}

// cutAtSTARTTLS returns where a STARTTLS command line (or the start of
// one) begins in b, following the client's stream with a copy of the
// scanner so that message data (DATA, BDAT chunks) is never taken for a
// command; len(b) if there is none.
func (w *wireConn) cutAtSTARTTLS(b []byte) int {
	sc := w.sc
	for i := 0; i < len(b); {
		if sc.atCommandStart() {
			if _, whole, prefix := starttlsLine(b[i:]); whole || prefix {
				return i
			}
		}
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return len(b)
		}
		sc.scan(b[i:i+j+1], 0)
		i += j + 1
	}
	return len(b)
}

// startTLS answers STARTTLS and runs the handshake on the socket.
func (w *wireConn) startTLS() error {
	if _, err := w.Conn.Write([]byte("220 2.0.0 ready to start TLS\r\n")); err != nil {
		return err
	}
	tc := tls.Server(w.Conn, w.srv.cfg.TLS)
	ctx, cancel := context.WithTimeout(context.Background(), w.srv.cfg.IdleTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		w.srv.cfg.Logger.Info("TLS handshake failed after STARTTLS", "cid", w.cid, "client", w.ip, "err", err)
		w.srv.m.rejected.WithLabelValues("tls_handshake").Inc()
		w.Close()
		return net.ErrClosed
	}
	w.mu.Lock()
	w.tlsConn, w.Conn = tc, tc
	w.mu.Unlock()
	w.tlsHelos = w.sc.helos
	return nil
}

// needEHLO reports whether STARTTLS was done here and the client has not
// sent EHLO (or HELO) since: RFC 3207 §4.2, the session starts afresh.
func (w *wireConn) needEHLO() bool { return w.tlsHelos >= 0 && w.sc.helos == w.tlsHelos }
