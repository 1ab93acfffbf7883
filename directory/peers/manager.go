package peers

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nhsrelay/audit"
	"nhsrelay/directory"
)

// Defaults.
const (
	DefaultInterval = 15 * time.Minute
	DefaultTimeout  = 5 * time.Minute // one whole sync, every page
)

// ErrNotFound means no peer has the name asked for.
var ErrNotFound = errors.New("peers: no such peer")

// ErrExists means a peer with the name is already added.
var ErrExists = errors.New("peers: a peer with this name exists")

// Config is what New needs; Directory and Store are required.
type Config struct {
	Directory *directory.Directory
	Store     FileStore
	// Interval between syncs of each peer (default DefaultInterval).
	Interval time.Duration
	// Timeout bounds one sync (default DefaultTimeout).
	Timeout time.Duration
	Logger  *slog.Logger          // nil: discard
	Audit   audit.Recorder        // nil: no audit events
	Metrics prometheus.Registerer // nil: not registered
	Now     func() time.Time      // nil: time.Now
	// OnTrustChange is called after a peer is added or removed, so that
	// cmd reloads the S/MIME trust (SMIMECAs, ScopedOrgCAs) at once.
	OnTrustChange func()
}

// Manager holds the peers and syncs them. Safe for concurrent use.
type Manager struct {
	cfg Config
	log *slog.Logger
	m   metrics

	syncMu sync.Mutex // one sync (or add, remove) at a time

	mu     sync.RWMutex
	peers  map[string]Peer
	cas    map[string][]*x509.Certificate
	status map[string]*Info
	// scope: peer → ODS codes and MX hosts of its live endpoints.
	odsOf map[string]map[string]bool
	mxOf  map[string]map[string]bool
}

type metrics struct {
	failures, certChanges *prometheus.CounterVec
	endpoints             *prometheus.GaugeVec
	lastSuccess           *prometheus.GaugeVec
	duration              *prometheus.HistogramVec
}

// New loads the stored peers.
func New(cfg Config) (*Manager, error) {
	if cfg.Directory == nil || cfg.Store.Path == "" {
		return nil, errors.New("peers: Directory and Store are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, peers: map[string]Peer{}, cas: map[string][]*x509.Certificate{},
		status: map[string]*Info{}, odsOf: map[string]map[string]bool{}, mxOf: map[string]map[string]bool{}}
	m.m = metrics{
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nhsrelay_peer_sync_failures_total",
			Help: "Federation peer syncs that failed (the imported endpoints were left as they were)."}, []string{"peer"}),
		certChanges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nhsrelay_peer_certificate_changes_total",
			Help: "Endpoint certificates changed by a federation peer's sync (renewals included)."}, []string{"peer"}),
		endpoints: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nhsrelay_peer_endpoints",
			Help: "Live endpoints imported from each federation peer."}, []string{"peer"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nhsrelay_peer_last_success_timestamp_seconds",
			Help: "When each federation peer last synced successfully."}, []string{"peer"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "nhsrelay_peer_sync_seconds",
			Help: "How long a federation peer sync took.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 12)}, []string{"peer"}),
	}
	if cfg.Metrics != nil {
		for _, c := range []prometheus.Collector{m.m.failures, m.m.certChanges, m.m.endpoints, m.m.lastSuccess, m.m.duration} {
			if err := cfg.Metrics.Register(c); err != nil {
				return nil, fmt.Errorf("peers: metrics: %w", err)
			}
		}
	}
	ps, err := cfg.Store.Load()
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		cas, err := p.check()
		if err != nil {
			return nil, fmt.Errorf("peers: stored peer %q: %w", p.Name, err)
		}
		m.peers[p.Name], m.cas[p.Name] = p, cas
		m.status[p.Name] = m.info(p)
	}
	m.rescope()
	return m, nil
}

func (m *Manager) info(p Peer) *Info {
	in := &Info{Name: p.Name, URL: p.URL, AddedAt: p.AddedAt, AddedBy: p.AddedBy}
	for _, c := range m.cas[p.Name] {
		in.CAs = append(in.CAs, c.Subject.String()+" "+fingerprint(c.Raw))
	}
	return in
}

// rescope recomputes each peer's ODS codes and MX hosts from the directory.
func (m *Manager) rescope() {
	ods, mx := map[string]map[string]bool{}, map[string]map[string]bool{}
	counts := map[string]int{}
	for _, e := range m.cfg.Directory.Endpoints(context.Background(), directory.Filter{}) {
		if e.Peer == "" || e.Status == directory.StatusRetired {
			continue
		}
		if ods[e.Peer] == nil {
			ods[e.Peer], mx[e.Peer] = map[string]bool{}, map[string]bool{}
		}
		ods[e.Peer][e.ODS] = true
		if h, _, err := net.SplitHostPort(e.NextHop.Host); err == nil {
			mx[e.Peer][strings.ToLower(h)] = true
		}
		counts[e.Peer]++
	}
	m.mu.Lock()
	m.odsOf, m.mxOf = ods, mx
	for name, in := range m.status {
		in.Endpoints = counts[name]
		in.Organisations = len(ods[name])
		in.MXHosts = sortedKeys(mx[name])
		m.m.endpoints.WithLabelValues(name).Set(float64(counts[name]))
	}
	m.mu.Unlock()
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Add checks p, fetches its directory once (so a wrong URL, token or CA
// is refused now, with the reason, and nothing is stored), stores it and
// imports its endpoints.
func (m *Manager) Add(ctx context.Context, p Peer) (Info, error) {
	cas, err := p.check()
	if err != nil {
		return Info{}, &InputError{Err: err}
	}
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	m.mu.RLock()
	_, exists := m.peers[p.Name]
	m.mu.RUnlock()
	if exists {
		return Info{}, fmt.Errorf("%w: %s (remove it first to change it)", ErrExists, p.Name)
	}
	p.AddedAt, p.AddedBy = m.cfg.Now().UTC(), audit.ActorFrom(ctx)
	f, err := m.fetch(ctx, p, cas)
	if err != nil {
		m.record(ctx, "peer.add", "failed", "peer "+p.Name+" at "+p.URL+": "+err.Error())
		return Info{}, &InputError{Err: fmt.Errorf("peer %s not added: its directory could not be read: %w", p.Name, err)}
	}
	m.mu.Lock()
	all := make([]Peer, 0, len(m.peers)+1)
	for _, q := range m.peers {
		all = append(all, q)
	}
	m.mu.Unlock()
	if err := m.cfg.Store.Save(append(all, p)); err != nil {
		return Info{}, err
	}
	m.mu.Lock()
	m.peers[p.Name], m.cas[p.Name] = p, cas
	m.status[p.Name] = m.info(p)
	m.mu.Unlock()
	m.record(ctx, "peer.added", "ok", fmt.Sprintf("peer %s at %s, CA %s", p.Name, p.URL, strings.Join(m.info(p).CAs, "; ")))
	m.log.Info("federation peer added", "peer", p.Name, "url", p.URL)
	m.apply(ctx, p, f, time.Now())
	m.trustChanged()
	return m.Show(p.Name)
}

// Remove retires every endpoint imported from the peer, forgets it and
// stops trusting its CA.
func (m *Manager) Remove(ctx context.Context, name string) error {
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	m.mu.RLock()
	_, ok := m.peers[name]
	var rest []Peer
	for _, q := range m.peers {
		if q.Name != name {
			rest = append(rest, q)
		}
	}
	m.mu.RUnlock()
	if !ok {
		return fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	res, err := m.cfg.Directory.SyncPeer(ctx, name, nil)
	if err != nil {
		return fmt.Errorf("peers: remove %s: retire its endpoints: %w", name, err)
	}
	if err := m.cfg.Store.Save(rest); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.peers, name)
	delete(m.cas, name)
	delete(m.status, name)
	m.mu.Unlock()
	m.m.endpoints.DeleteLabelValues(name)
	m.record(ctx, "peer.removed", "ok", fmt.Sprintf("peer %s: %d endpoints retired", name, len(res.Retired)))
	m.log.Info("federation peer removed", "peer", name, "retired", len(res.Retired))
	m.rescope()
	m.trustChanged()
	return nil
}

// List returns every peer, by name.
func (m *Manager) List() []Info {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Info, 0, len(m.status))
	for _, in := range m.status {
		out = append(out, *in)
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Show returns one peer.
func (m *Manager) Show(name string) (Info, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	in, ok := m.status[name]
	if !ok {
		return Info{}, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return *in, nil
}

// Sync fetches the peer's directory and applies it now.
func (m *Manager) Sync(ctx context.Context, name string) (Info, error) {
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	m.mu.RLock()
	p, ok := m.peers[name]
	cas := m.cas[name]
	m.mu.RUnlock()
	if !ok {
		return Info{}, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	start := time.Now()
	f, err := m.fetch(ctx, p, cas)
	if err != nil && ctx.Err() != nil {
		return Info{}, fmt.Errorf("peers: sync %s: %w", name, ctx.Err()) // shutting down: not the peer's failure
	}
	if err != nil {
		m.failed(ctx, p, err, start)
		in, _ := m.Show(name)
		return in, fmt.Errorf("peers: sync %s: %w", name, err)
	}
	if err := m.apply(ctx, p, f, start); err != nil {
		in, _ := m.Show(name)
		return in, err
	}
	return m.Show(name)
}

func (m *Manager) fetch(ctx context.Context, p Peer, cas []*x509.Certificate) (fetched, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	known := func(remoteID string) [][]byte {
		e, err := m.cfg.Directory.Endpoint(ctx, directory.PeerEndpointID(p.Name, remoteID))
		if err != nil || e.Peer != p.Name || e.Status == directory.StatusRetired {
			return nil
		}
		return e.Certificates
	}
	return fetch(ctx, client(cas, m.cfg.Timeout), p, cas, known, m.cfg.Now())
}

// apply writes a fetched list to the directory and records the outcome.
func (m *Manager) apply(ctx context.Context, p Peer, f fetched, start time.Time) error {
	res, err := m.cfg.Directory.SyncPeer(ctx, p.Name, f.endpoints)
	if err != nil {
		m.failed(ctx, p, err, start)
		return fmt.Errorf("peers: sync %s: %w", p.Name, err)
	}
	took := time.Since(start)
	now := m.cfg.Now()
	m.mu.Lock()
	if in := m.status[p.Name]; in != nil {
		in.LastAttempt, in.LastSuccess, in.LastError = now, now, ""
		in.LastDuration = took.Round(time.Millisecond).String()
		in.Last = &res
	}
	m.mu.Unlock()
	m.m.lastSuccess.WithLabelValues(p.Name).Set(float64(now.Unix()))
	m.m.duration.WithLabelValues(p.Name).Observe(took.Seconds())
	if n := len(res.CertChanged); n > 0 {
		m.m.certChanges.WithLabelValues(p.Name).Add(float64(n))
		// An alert: a certificate an operator did not change here is now
		// the one mail is encrypted to.
		m.log.Error("federation peer changed endpoint certificates", "peer", p.Name, "count", n,
			"endpoints", strings.Join(firstN(res.CertChanged, 10), ","))
		m.record(ctx, "peer.certificates_changed", "ok", fmt.Sprintf("peer %s: %d endpoint certificates changed: %s",
			p.Name, n, strings.Join(firstN(res.CertChanged, 20), ", ")))
	}
	for _, pr := range append(f.problems, res.Rejected...) {
		m.log.Warn("federation peer entry not imported as published", "peer", p.Name, "problem", pr)
	}
	m.log.Info("federation peer synced", "peer", p.Name, "pages", f.pages, "endpoints", len(f.endpoints),
		"added", len(res.Added), "changed", len(res.Changed), "retired", len(res.Retired),
		"conflicts", len(res.Conflicts), "took", took.Round(time.Millisecond))
	m.rescope()
	return nil
}

func firstN(s []string, n int) []string { return s[:min(n, len(s))] }

// failed alerts on a failed sync: log ERROR, metric, audit.
func (m *Manager) failed(ctx context.Context, p Peer, err error, start time.Time) {
	now := m.cfg.Now()
	m.mu.Lock()
	if in := m.status[p.Name]; in != nil {
		in.LastAttempt, in.LastError = now, err.Error()
		in.LastDuration = time.Since(start).Round(time.Millisecond).String()
	}
	m.mu.Unlock()
	m.m.failures.WithLabelValues(p.Name).Inc()
	m.log.Error("federation peer sync failed; its endpoints are kept as last synced", "peer", p.Name, "url", p.URL, "err", err)
	m.record(ctx, "peer.sync", "failed", "peer "+p.Name+" at "+p.URL+": "+err.Error())
}

func (m *Manager) record(ctx context.Context, action, outcome, detail string) {
	if m.cfg.Audit == nil {
		return
	}
	actor := audit.ActorFrom(ctx)
	if actor == "" {
		actor = "system"
	}
	if err := m.cfg.Audit.Record(audit.Event{Time: m.cfg.Now(), Actor: actor, Action: action, Outcome: outcome, Detail: detail}); err != nil {
		m.log.Error("peers: audit record failed", "action", action, "err", err)
	}
}

func (m *Manager) trustChanged() {
	if m.cfg.OnTrustChange != nil {
		m.cfg.OnTrustChange()
	}
}

// Run syncs every peer each Interval until ctx ends. cmd starts it once.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.mu.RLock()
		names := sortedKeys(func() map[string]bool {
			s := map[string]bool{}
			for n := range m.peers {
				s[n] = true
			}
			return s
		}())
		m.mu.RUnlock()
		for _, n := range names {
			if ctx.Err() != nil {
				return
			}
			m.Sync(audit.WithActor(ctx, "system"), n) // failures are alerted inside
		}
	}
}

// InputError is a peer add refused for what the administrator gave.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }
