package smtpd

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// wireConn is the net.Conn go-smtp reads and writes. It sits on the socket
// before TLS, and on top of our own TLS layer once there is one: implicit
// on 465, or after STARTTLS, which it does itself (starttls.go) so that
// go-smtp never wraps the connection in a TLS layer of its own. So it sees
// the client's plaintext and go-smtp's replies for the whole session.
//
// What it enforces, and why here: go-smtp reads through a 4 KiB bufio.Reader
// and gives the backend no view of what is buffered, nor any hook before the
// greeting or before the 354 reply. So:
//
//   - pregreet (Postfix postscreen's test): the greeting is sent as a
//     multi-line reply; a client that sends anything before its last line
//     within GreetWait is refused with 554 5.5.1 and disconnected;
//   - RFC 2920 §3.1 synchronisation points: a client that has sent bytes past
//     the EHLO/HELO line before its reply (it cannot know PIPELINING yet), past
//     STARTTLS before the 220 (RFC 3207 §4, the CVE-2011-0411 injection), or
//     past DATA before the 354 (message content ahead of time, the shape of
//     smuggling attempts) is refused with 554 5.5.1 and disconnected. Only
//     bytes we have already read count, so this never fires falsely; a
//     violation still in flight is missed, which is allowed;
//   - the raw DATA stream is scanned for bare CR and LF before go-smtp
//     removes dot-stuffing (go-smtp silently drops the ".\r" of
//     "\r\n.\r", which the content check after it cannot see);
//   - go-smtp's stock reply texts are replaced by ours (replies.go).
//
// In every mode it also counts command lines (go-smtp sets a read deadline
// before each one) for the junk-command limit — an accepted MAIL, RCPT or
// AUTH and every read of message data (each BDAT chunk's bytes) reset the
// count, see progress — closes the session after a 421 or when the server
// is draining, and releases the connection counts on Close.
type wireConn struct {
	net.Conn // raw TCP, or on 465 our *tls.Conn
	srv      *Server
	mode     Mode
	cid      string
	ip       netip.Addr
	trusted  bool
	tlsConn  *tls.Conn // on 465 only: our TLS layer below
	release  func()
	relOnce  sync.Once
	greeted  bool // only go-smtp's goroutine touches greeted, scanning, read, sc, held, pending
	scanning bool
	read     int64
	sc       scanner
	held     []byte // read from the socket, not yet passed up: a STARTTLS line, or what may become one
	pending  []byte // to pass up before reading again
	rbuf     []byte
	tlsHelos int          // sc.helos when STARTTLS was done here; -1 before (needEHLO)
	dataSeq  atomic.Int64 // DATA streams started (354 sent) while scanning

	mu        sync.Mutex
	top       net.Conn // where a reply can be written now (nil: nowhere)
	violation string
	closing   bool // close at the next command read
	draining  bool
	inTxn     bool
	junk      int
	errs      int
}

// Read passes bytes up and, while plaintext is visible, scans them.
// Before TLS it takes STARTTLS out of the stream (starttls.go).
func (w *wireConn) Read(p []byte) (int, error) {
	var n int
	var err error
	switch {
	case len(w.pending) > 0:
		n = copy(p, w.pending)
		w.pending = w.pending[n:]
	case len(w.held) > 0 || w.offersSTARTTLS() && w.sc.atCommandStart():
		n, err = w.readCommands(p)
	default:
		n, err = w.conn().Read(p)
	}
	if n > 0 && w.scanning {
		w.sc.scan(p[:n], w.read)
	}
	w.read += int64(n)
	return n, err
}

// Write checks the synchronisation points before go-smtp's reply leaves.
func (w *wireConn) Write(p []byte) (int, error) {
	if !w.greeted {
		w.greeted = true
		if err := w.greet(); err != nil {
			return 0, err
		}
	}
	if w.scanning {
		var what string
		switch {
		case bytes.HasPrefix(p, []byte("354 ")):
			if w.read > w.sc.dataEnd {
				what = "message content sent before the 354 reply to DATA"
			} else {
				w.sc.startData()
				w.dataSeq.Add(1)
			}
		case bytes.HasPrefix(p, []byte("250-Hello ")), bytes.HasPrefix(p, []byte("250 2.0.0 Hello ")):
			if w.read > w.sc.ehloEnd {
				what = "commands sent before the reply to EHLO/HELO"
			}
		}
		if what != "" {
			w.refuseSync(what)
			return 0, net.ErrClosed
		}
	}
	if err := w.writeOurs(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// greet runs before go-smtp's greeting: the TLS handshake on 465, then the
// pregreet test.
func (w *wireConn) greet() error {
	if w.tlsConn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), w.srv.cfg.IdleTimeout)
		err := w.tlsConn.HandshakeContext(ctx)
		cancel()
		if err != nil {
			w.srv.cfg.Logger.Info("TLS handshake failed", "cid", w.cid, "client", w.ip, "err", err)
			w.srv.m.rejected.WithLabelValues("tls_handshake").Inc()
			w.Close()
			return net.ErrClosed
		}
	}
	wait := w.srv.limits().GreetWait
	// The pregreet test is for the MX listener, as Postfix's postscreen
	// runs it on port 25 only: submission clients must authenticate
	// anyway, and a wait on every connection would cost each login.
	if wait <= 0 || w.trusted || !w.scanning || w.mode != MX {
		return nil
	}
	// RFC 5321 §4.2.1: a multi-line reply; the client must wait for the
	// line with a space after the code.
	if _, err := w.Conn.Write([]byte("220-" + w.srv.cfg.Hostname + " ESMTP nhsrelay\r\n")); err != nil {
		return err
	}
	w.Conn.SetReadDeadline(time.Now().Add(wait))
	var one [1]byte
	n, err := w.Conn.Read(one[:])
	w.Conn.SetReadDeadline(time.Time{})
	if n > 0 {
		w.refuseSync("client sent data before the greeting (RFC 5321 §4.3.1)")
		return net.ErrClosed
	}
	if err != nil && !isTimeout(err) {
		w.Close() // gone, or broken
		return net.ErrClosed
	}
	return nil
}

// isTimeout reports whether err is a deadline passing, however wrapped.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// refuseSync answers a pipelining violation and closes the connection.
func (w *wireConn) refuseSync(what string) {
	w.mu.Lock()
	w.violation = what
	w.mu.Unlock()
	w.srv.m.rejected.WithLabelValues("pipelining").Inc()
	w.srv.cfg.Logger.Warn("protocol violation", "cid", w.cid, "client", w.ip, "what", what, "code", 554)
	w.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	w.Conn.Write([]byte("554 5.5.1 " + w.srv.cfg.Hostname + " protocol error: " + what + "; closing connection: wait for each reply before sending more (RFC 2920 §3.1)\r\n"))
	w.Close()
}

// SetReadDeadline is called by go-smtp (directly, or through its *tls.Conn)
// before every command line: the place to count junk and to stop.
func (w *wireConn) SetReadDeadline(t time.Time) error {
	w.mu.Lock()
	w.junk++
	stop := w.violation != "" || w.closing || (w.draining && !w.inTxn)
	var bye string
	if !stop && w.junk > w.srv.limits().MaxJunkCommands {
		stop, bye = true, "421 4.7.0 "+w.srv.cfg.Hostname+" too many commands without mail, closing connection; reconnect when you have mail to send\r\n"
		w.srv.m.rejected.WithLabelValues("junk_commands").Inc()
	} else if w.draining && !w.inTxn && w.violation == "" && !w.closing {
		bye = "421 4.3.2 " + w.srv.cfg.Hostname + " service shutting down, closing connection; try again later\r\n"
	}
	top := w.top
	w.mu.Unlock()
	if !stop {
		return w.Conn.SetReadDeadline(t)
	}
	if bye != "" && top != nil {
		top.SetWriteDeadline(time.Now().Add(5 * time.Second))
		top.Write([]byte(bye))
	}
	w.Close()
	return net.ErrClosed
}

// setDataDeadline sets the read deadline without counting a command.
func (w *wireConn) setDataDeadline(t time.Time) error { return w.Conn.SetReadDeadline(t) }

// conn is the layer below: the socket, or our TLS over it.
func (w *wireConn) conn() net.Conn {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.Conn
}

func (w *wireConn) Close() error {
	err := w.conn().Close()
	w.relOnce.Do(w.release)
	return err
}

func (w *wireConn) setTop(c net.Conn) {
	w.mu.Lock()
	w.top = c
	w.mu.Unlock()
}

// violated returns what the client did wrong, or "".
func (w *wireConn) violated() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.violation
}

func (w *wireConn) setTxn(on bool) {
	w.mu.Lock()
	w.inTxn = on
	w.mu.Unlock()
}

// progress marks a command that moved a transaction forward.
func (w *wireConn) progress() {
	w.mu.Lock()
	w.junk = 0
	w.mu.Unlock()
}

// addError counts a refused command; true means the limit is reached and
// the session must answer 421 and close.
func (w *wireConn) addError() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.errs++
	if w.errs >= w.srv.limits().MaxErrors {
		w.closing = true
		return true
	}
	return false
}

// closeAfterReply makes the next command read close the connection.
func (w *wireConn) closeAfterReply() {
	w.mu.Lock()
	w.closing = true
	w.mu.Unlock()
}

// drain is Shutdown's nudge: an idle session is woken and closed at once, a
// session in a transaction is closed at its next command after it.
func (w *wireConn) drain() {
	w.mu.Lock()
	w.draining = true
	idle := !w.inTxn
	c := w.Conn
	w.mu.Unlock()
	if idle {
		c.SetReadDeadline(time.Now())
	}
}

// rawBare reports whether the DATA stream now ending, as the client sent
// it, had a bare CR or LF. Call it only from go-smtp's goroutine (DATA, not
// BDAT), after the stream's end was read.
func (w *wireConn) rawBare() bool { return w.scanning && w.sc.bare }

// scanner follows the client's plaintext byte stream: command lines (and
// where the synchronising ones end), BDAT chunks, and DATA streams.
type scanner struct {
	line             [32]byte // start of the current command line
	lineLen          int
	ehloEnd, dataEnd int64 // stream offset just past the latest such line
	skip             int64 // BDAT chunk bytes still to pass over
	data             bool
	st               int // go-smtp's dot-unstuffing state, mirrored
	prevCR, bare     bool
	helos            int // EHLO and HELO lines seen
}

// The states of go-smtp's dataReader (data.go), which decides where DATA
// ends; we must agree with it to the byte.
const (
	stBeginLine = iota
	stDot
	stDotCR
	stCR
	stData
)

// atCommandStart reports whether the next byte starts a command line.
func (s *scanner) atCommandStart() bool { return !s.data && s.skip == 0 && s.lineLen == 0 }

func (s *scanner) startData() {
	s.data, s.st, s.prevCR, s.bare, s.lineLen = true, stBeginLine, false, false, 0
}

func (s *scanner) scan(b []byte, base int64) {
	for i, c := range b {
		switch {
		case s.skip > 0:
			s.skip--
		case s.data:
			s.dataByte(c)
		case c == '\n':
			s.endLine(base + int64(i) + 1)
		default:
			if s.lineLen < len(s.line) {
				s.line[s.lineLen] = c
			}
			s.lineLen++
		}
	}
}

func (s *scanner) dataByte(c byte) {
	// RFC 5321 §2.3.8: CR and LF only as a pair.
	if s.prevCR && c != '\n' || !s.prevCR && c == '\n' {
		s.bare = true
	}
	s.prevCR = c == '\r'
	switch s.st {
	case stBeginLine:
		switch c {
		case '.':
			s.st = stDot
		case '\r':
			s.st = stCR
		default:
			s.st = stData
		}
	case stDot:
		if c == '\r' {
			s.st = stDotCR
		} else {
			s.st = stData
		}
	case stDotCR:
		if c == '\n' {
			s.data = false // <CRLF>.<CRLF>: back to commands
			s.st = stBeginLine
		} else {
			s.st = stData
		}
	case stCR:
		if c == '\n' {
			s.st = stBeginLine
		} else {
			s.st = stData
		}
	case stData:
		if c == '\r' {
			s.st = stCR
		}
	}
}

func (s *scanner) endLine(end int64) {
	n := min(s.lineLen, len(s.line))
	complete := s.lineLen <= len(s.line)
	s.lineLen = 0
	line := strings.ToUpper(strings.TrimSuffix(string(s.line[:n]), "\r"))
	switch {
	case strings.HasPrefix(line, "EHLO") || strings.HasPrefix(line, "HELO"):
		s.ehloEnd = end
		s.helos++
	case complete && line == "DATA":
		s.dataEnd = end
	case complete && strings.HasPrefix(line, "BDAT "):
		// Mirror go-smtp's handleBdat: the chunk follows whenever the
		// arguments parse, accepted or not.
		args := strings.Fields(line[5:])
		if len(args) == 0 || len(args) > 2 || len(args) == 2 && args[1] != "LAST" {
			return
		}
		if size, err := strconv.ParseUint(args[0], 10, 32); err == nil {
			s.skip = int64(size)
		}
	}
}
