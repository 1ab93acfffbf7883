package smtpd

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
)

// Server is the SMTP front door. One Server serves any number of listeners
// (Serve once per listener); the connection limits are shared by all.
type Server struct {
	cfg      Config // limits are read through limits(): SetLimits changes them
	live     liveLimits
	m        *metrics
	authFail *failLimiter

	mu        sync.Mutex
	closed    bool
	servers   []*smtp.Server
	listeners []net.Listener
	conns     map[*wireConn]struct{}
	perIP     map[netip.Addr]int
}

// New checks cfg, fills in the secure defaults and registers the metrics.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, m: m,
		authFail: &failLimiter{max: cfg.MaxAuthFailures, window: cfg.AuthFailureWindow, now: time.Now},
		conns:    map[*wireConn]struct{}{}, perIP: map[netip.Addr]int{}}, nil
}

// Serve accepts connections on ln until Shutdown, speaking mode. For
// SubmissionTLS, ln is a plain TCP listener: Serve does the TLS.
func (s *Server) Serve(ln net.Listener, mode Mode) error {
	if mode != Submission && mode != SubmissionTLS && mode != MX {
		return fmt.Errorf("smtpd: serve: unknown mode %v", mode)
	}
	gs := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return s.newSession(c, mode)
	}))
	gs.Domain = s.cfg.Hostname
	// No gs.TLSConfig: we do STARTTLS ourselves, below go-smtp (starttls.go),
	// as we do implicit TLS on 465, so go-smtp never sees TLS and we refuse
	// AUTH without it ourselves (session.Auth).
	gs.AllowInsecureAuth = true
	gs.EnableDSN = true // RFC 3461 on every listener: NOTIFY, ORCPT, RET, ENVID (dsn.go)
	gs.MaxMessageBytes = s.cfg.MaxMessageBytes
	gs.MaxRecipients = s.cfg.MaxRecipients
	gs.MaxLineLength = 2000 // go-smtp's default: twice RFC 5321 §4.5.3.1.6's 1000
	gs.ReadTimeout = s.cfg.IdleTimeout
	gs.WriteTimeout = s.cfg.IdleTimeout
	gs.ErrorLog = errLog{s}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.servers = append(s.servers, gs)
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()

	err := gs.Serve(&listener{Listener: ln, s: s, mode: mode})
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrServerClosed
	}
	if err == nil {
		err = errors.New("listener stopped")
	}
	return fmt.Errorf("smtpd: serve %v on %v: %w", mode, ln.Addr(), err)
}

// Shutdown stops accepting, closes idle sessions at once (421 4.3.2 or
// go-smtp's 421 4.4.2), lets sessions in a transaction finish it until ctx
// is done, then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.closed = true
	servers := append([]*smtp.Server(nil), s.servers...)
	lns := append([]net.Listener(nil), s.listeners...)
	ws := make([]*wireConn, 0, len(s.conns))
	for w := range s.conns {
		ws = append(ws, w)
	}
	s.mu.Unlock()

	for _, ln := range lns {
		ln.Close() // go-smtp's Serve sees done and returns
	}
	for _, w := range ws {
		w.drain()
	}
	var errs []error
	for _, gs := range servers {
		// Its error is from closing listeners we already closed.
		gs.Shutdown(ctx)
	}
	if ctx.Err() != nil {
		for _, gs := range servers {
			gs.Close()
		}
		errs = append(errs, fmt.Errorf("smtpd: shutdown: %w", ctx.Err()))
	}
	return errors.Join(errs...)
}

// listener admits connections within the limits and wraps them in wireConn.
type listener struct {
	net.Listener
	s    *Server
	mode Mode
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if w := l.s.admit(c, l.mode); w != nil {
			return w, nil
		}
	}
}

// admit counts c against MaxConns and MaxConnsPerIP, or refuses it with
// 421 4.7.0 (RFC 5321 §3.1 allows 421 in place of the greeting; on 465 the
// connection is only closed, as a plaintext reply would not be understood).
func (s *Server) admit(c net.Conn, mode Mode) *wireConn {
	ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	ip := ap.Addr().Unmap()
	trusted := s.limits().trusted(ip)
	cid := newCID()

	s.mu.Lock()
	var why, reason string
	switch {
	case s.closed:
		why, reason = "4.3.2 "+s.cfg.Hostname+" service shutting down, try again later", "shutdown"
	case len(s.conns) >= s.limits().MaxConns:
		why, reason = "4.7.0 "+s.cfg.Hostname+" too many connections, try again later", "conn_limit"
	case !trusted && s.perIP[ip] >= s.limits().MaxConnsPerIP:
		why, reason = "4.7.0 "+s.cfg.Hostname+" too many connections from your address, try again later", "conn_limit_ip"
	}
	if why != "" {
		s.mu.Unlock()
		s.m.rejected.WithLabelValues(reason).Inc()
		s.cfg.Logger.Warn("connection refused", "cid", cid, "client", ip, "mode", mode, "reason", reason, "code", 421)
		go func() {
			if mode != SubmissionTLS {
				c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				c.Write([]byte("421 " + why + "\r\n"))
			}
			c.Close()
		}()
		return nil
	}
	w := &wireConn{Conn: c, srv: s, mode: mode, cid: cid, ip: ip, trusted: trusted, scanning: true, tlsHelos: -1}
	w.top = w
	if mode == SubmissionTLS {
		w.tlsConn = tls.Server(c, s.cfg.TLS)
		w.Conn = w.tlsConn
	}
	s.conns[w] = struct{}{}
	s.perIP[ip]++
	s.mu.Unlock()
	w.release = func() {
		s.mu.Lock()
		delete(s.conns, w)
		if s.perIP[ip]--; s.perIP[ip] <= 0 {
			delete(s.perIP, ip)
		}
		s.mu.Unlock()
		s.m.active.Dec()
	}
	s.m.conns.WithLabelValues(mode.String()).Inc()
	s.m.active.Inc()
	return w
}

// newCID returns a short random connection id the client can quote.
func newCID() string {
	var b [8]byte
	rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// errLog takes go-smtp's internal error reports; panics it recovered are
// counted (a test fails on any).
type errLog struct{ s *Server }

func (l errLog) Printf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.HasPrefix(format, "panic") {
		l.s.m.panics.Inc()
		l.s.cfg.Logger.Error("smtp: recovered panic", "err", msg)
		return
	}
	l.s.cfg.Logger.Info("smtp: " + msg)
}

func (l errLog) Println(v ...any) { l.Printf("%s", fmt.Sprint(v...)) }

type metrics struct {
	conns    *prometheus.CounterVec
	active   prometheus.Gauge
	accepted *prometheus.CounterVec
	rejected *prometheus.CounterVec
	panics   prometheus.Counter

	auditFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		conns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nhsrelay_smtpd_connections_total",
			Help: "SMTP connections admitted, by listener mode."}, []string{"mode"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{Name: "nhsrelay_smtpd_connections_active",
			Help: "SMTP connections open now."}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nhsrelay_smtpd_messages_accepted_total",
			Help: "Messages queued (250 sent), by listener mode."}, []string{"mode"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nhsrelay_smtpd_rejected_total",
			Help: "Refused connections, commands and messages, by reason."}, []string{"reason"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{Name: "nhsrelay_smtpd_panics_total",
			Help: "Panics recovered in SMTP sessions (always a bug)."}),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "nhsrelay_smtpd_audit_failures_total",
			Help: "Audit events smtpd could not record (the audit log is down; mail is refused until it is back)."}),
	}
	for _, c := range []prometheus.Collector{m.conns, m.active, m.accepted, m.rejected, m.panics, m.auditFailures} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("smtpd: register metrics: %w", err)
		}
	}
	return m, nil
}

// failLimiter counts failed AUTHs per client IP in a sliding window.
type failLimiter struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	now    func() time.Time
	fails  map[netip.Addr][]time.Time
}

func (f *failLimiter) prune(ip netip.Addr, now time.Time) []time.Time {
	ts := f.fails[ip]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) > f.window {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(f.fails, ip)
	} else {
		f.fails[ip] = ts
	}
	return ts
}

func (f *failLimiter) blocked(ip netip.Addr) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.prune(ip, f.now())) >= f.max
}

func (f *failLimiter) add(ip netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if f.fails == nil {
		f.fails = map[netip.Addr][]time.Time{}
	}
	if len(f.fails) > 10000 { // bound memory: drop expired entries
		for other := range f.fails {
			f.prune(other, now)
		}
	}
	ts := f.prune(ip, now)
	if len(ts) >= f.max {
		ts = ts[1:]
	}
	f.fails[ip] = append(ts, now)
}
