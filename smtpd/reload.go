package smtpd

import (
	"net/netip"
	"slices"
	"sync/atomic"
	"time"
)

// Limits are the settings a running Server can change (SetLimits): each is
// read afresh per connection, command or message. Their meaning, zero
// values and defaults are Config's fields of the same names.
//
// Not here, because go-smtp reads them from its own server without
// synchronisation for every connection: MaxMessageBytes, MaxRecipients and
// IdleTimeout. Changing those needs a new Server.
type Limits struct {
	TrustedNetworks   []netip.Prefix // applies to connections admitted after the change
	MaxHeaderBytes    int
	MaxConnsPerIP     int
	MaxConns          int
	DataTimeout       time.Duration // applies to DATA started after the change
	MinDataRate       int
	MaxErrors         int
	MaxJunkCommands   int
	GreetWait         time.Duration
	MaxAuthFailures   int
	AuthFailureWindow time.Duration
}

// liveLimits holds the Limits in force; nil until the first read or
// SetLimits, when they come from the Server's Config.
type liveLimits = atomic.Pointer[Limits]

func limitsOf(c *Config) *Limits {
	return &Limits{
		TrustedNetworks: slices.Clone(c.TrustedNetworks), MaxHeaderBytes: c.MaxHeaderBytes,
		MaxConnsPerIP: c.MaxConnsPerIP, MaxConns: c.MaxConns, DataTimeout: c.DataTimeout,
		MinDataRate: c.MinDataRate, MaxErrors: c.MaxErrors, MaxJunkCommands: c.MaxJunkCommands,
		GreetWait: c.GreetWait, MaxAuthFailures: c.MaxAuthFailures, AuthFailureWindow: c.AuthFailureWindow,
	}
}

// limits returns the Limits in force. Callers must not modify them.
func (s *Server) limits() *Limits {
	if l := s.live.Load(); l != nil {
		return l
	}
	s.live.CompareAndSwap(nil, limitsOf(&s.cfg))
	return s.live.Load()
}

// Limits returns a copy of the limits in force.
func (s *Server) Limits() Limits {
	l := *s.limits()
	l.TrustedNetworks = slices.Clone(l.TrustedNetworks)
	return l
}

// SetLimits checks l as New checks a Config (zero takes the default,
// negative is refused, every problem named) and, only if all is well,
// puts it in force at once for every listener of s. Sessions already open
// keep their trusted status; all else applies to their next command or
// message. It is safe to call while serving.
func (s *Server) SetLimits(l Limits) error {
	c := s.cfg // Hostname, TLS etc. only so that withDefaults can check l
	c.TrustedNetworks, c.MaxHeaderBytes, c.MaxConnsPerIP, c.MaxConns = l.TrustedNetworks, l.MaxHeaderBytes, l.MaxConnsPerIP, l.MaxConns
	c.DataTimeout, c.MinDataRate, c.MaxErrors, c.MaxJunkCommands = l.DataTimeout, l.MinDataRate, l.MaxErrors, l.MaxJunkCommands
	c.GreetWait, c.MaxAuthFailures, c.AuthFailureWindow = l.GreetWait, l.MaxAuthFailures, l.AuthFailureWindow
	c, err := c.withDefaults()
	if err != nil {
		return err
	}
	s.mu.Lock() // one SetLimits at a time, so limiter and limits agree
	defer s.mu.Unlock()
	s.live.Store(limitsOf(&c))
	if s.authFail != nil {
		s.authFail.mu.Lock()
		s.authFail.max, s.authFail.window = c.MaxAuthFailures, c.AuthFailureWindow
		s.authFail.mu.Unlock()
	}
	return nil
}

func (l *Limits) trusted(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range l.TrustedNetworks {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
