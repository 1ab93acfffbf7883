package smimepolicy

import (
	"bytes"
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"nhsrelay/audit"
	"nhsrelay/certs"
	"nhsrelay/directory"
)

// Key rollover. A hosted endpoint may hold several decryption key pairs in
// KeysDir: the flat pair <address>.crt/.key, and any number of pairs
// <address>/<name>.crt/.key in a folder named after the address (a
// renewal is added there, beside the old one). The newest valid pair (the
// latest notBefore among those valid now) is current: its certificate is
// the one published in the directory (PublishKeys), so senders encrypt to
// it. Every pair is still tried for decryption (certs/smime.OpenWithKeys
// picks the one the message names), so mail encrypted to an older
// certificate before senders saw the new one is still read — until the
// old pair's files are removed.

// EndpointKey is one decryption pair of a hosted endpoint, for
// `certs status`.
type EndpointKey struct {
	Address string
	File    string // the .crt path
	Cert    *x509.Certificate
	Current bool   // the newest valid pair: published and encrypted to
	name    string // KeysDir name, without .crt
}

// endpointKeyNames lists the KeysDir names (without .crt) of addr's pairs.
func endpointKeyNames(keysDir, addr string) []string {
	base := endpointKeyName(addr)
	if _, ok := keyName(base); !ok {
		return nil
	}
	var names []string
	if _, err := os.Stat(filepath.Join(keysDir, base+".crt")); err == nil {
		names = append(names, base)
	}
	entries, _ := os.ReadDir(filepath.Join(keysDir, base))
	for _, e := range entries {
		n, ok := strings.CutSuffix(e.Name(), ".crt")
		if ok && !e.IsDir() && n != "" && n[0] != '.' {
			names = append(names, base+"/"+n)
		}
	}
	return names
}

// endpointKeys returns addr's loaded pairs, current first, then the others
// newest first. ErrNoKey if there is none.
func (p *Policy) endpointKeys(addr string) ([]certs.KeyPair, error) {
	var pairs []certs.KeyPair
	var firstErr error
	for _, n := range endpointKeyNames(p.cfg.KeysDir, addr) {
		kp, err := p.keyPair(n)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		pairs = append(pairs, *kp)
	}
	if len(pairs) == 0 {
		if firstErr != nil {
			return nil, firstErr
		}
		return nil, fmt.Errorf("smimepolicy: key %s: %w", endpointKeyName(addr), ErrNoKey)
	}
	now := p.cfg.Now()
	slices.SortStableFunc(pairs, func(a, b certs.KeyPair) int { return newerFirst(a.Cert, b.Cert, now) })
	return pairs, nil
}

// newerFirst orders certificates valid at now first, the latest notBefore
// first; ties by serial, so the order is stable. The first is current.
func newerFirst(a, b *x509.Certificate, now time.Time) int {
	valid := func(c *x509.Certificate) bool { return !now.Before(c.NotBefore) && !now.After(c.NotAfter) }
	if va, vb := valid(a), valid(b); va != vb {
		if va {
			return -1
		}
		return 1
	}
	return cmp.Or(b.NotBefore.Compare(a.NotBefore), b.SerialNumber.Cmp(a.SerialNumber))
}

// ListEndpointKeys reads the certificate of every hosted endpoint's pair in
// keysDir (<address>.crt and <address>/*.crt) and marks the current one of
// each address, as the policy chooses it: for `certs status` and the
// expiry check, which need no keys. Unreadable files are left out.
func ListEndpointKeys(keysDir string, now time.Time) []EndpointKey {
	entries, _ := os.ReadDir(keysDir)
	seen := map[string]bool{}
	var out []EndpointKey
	for _, e := range entries {
		addr := strings.TrimSuffix(e.Name(), ".crt")
		if !strings.Contains(addr, "@") || seen[addr] || (!e.IsDir() && !strings.HasSuffix(e.Name(), ".crt")) {
			continue
		}
		seen[addr] = true
		var keys []EndpointKey
		for _, n := range endpointKeyNames(keysDir, addr) {
			file := filepath.Join(keysDir, filepath.FromSlash(n)+".crt")
			data, err := os.ReadFile(file)
			if err != nil {
				continue
			}
			chain, err := certs.ParseCertificates(data)
			if err != nil || len(chain) == 0 {
				continue
			}
			keys = append(keys, EndpointKey{Address: addr, File: file, Cert: chain[0], name: n})
		}
		slices.SortStableFunc(keys, func(a, b EndpointKey) int { return newerFirst(a.Cert, b.Cert, now) })
		if len(keys) > 0 {
			keys[0].Current = true
		}
		out = append(out, keys...)
	}
	slices.SortStableFunc(out, func(a, b EndpointKey) int { return strings.Compare(a.Address, b.Address) })
	return out
}

// EndpointKeys is ListEndpointKeys for the policy's KeysDir, now.
func (p *Policy) EndpointKeys() []EndpointKey { return ListEndpointKeys(p.cfg.KeysDir, p.cfg.Now()) }

// Publisher is what PublishKeys writes through: *directory.Directory.
type Publisher interface {
	Lookup(ctx context.Context, addr string) (directory.Endpoint, error)
	SetCertificates(ctx context.Context, id string, certs [][]byte) error
}

// PublishKeys makes each hosted endpoint's directory certificate the
// current pair's certificate (with its chain), where it is not already:
// after a new pair is added to KeysDir, senders are given the new
// certificate. An endpoint not in the directory, or not hosted here, is
// left alone. It returns the addresses it changed; each change is audited
// by the directory (endpoint.certificates) and here (smime.key_rollover).
func (p *Policy) PublishKeys(ctx context.Context, dir Publisher) ([]string, error) {
	var changed []string
	var errs []error
	for _, k := range p.EndpointKeys() {
		if !k.Current {
			continue
		}
		ep, err := dir.Lookup(ctx, k.Address)
		if err != nil || !ep.Hosted() || ep.Status == directory.StatusRetired {
			continue
		}
		if len(ep.Certificates) > 0 && bytes.Equal(ep.Certificates[0], k.Cert.Raw) {
			continue
		}
		kp, err := p.keyPair(k.name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ders := [][]byte{k.Cert.Raw}
		for _, c := range kp.Chain {
			ders = append(ders, c.Raw)
		}
		if err := dir.SetCertificates(ctx, ep.ID, ders); err != nil {
			errs = append(errs, fmt.Errorf("smimepolicy: publish %s: %w", k.Address, err))
			continue
		}
		changed = append(changed, k.Address)
		p.record(audit.Event{Action: "smime.key_rollover", Endpoint: ep.Address, Outcome: "ok", Detail: fmt.Sprintf("current decryption certificate now %s (serial %x, valid %s to %s); older keys still decrypt until removed",
			certs.Name(k.Cert), k.Cert.SerialNumber, k.Cert.NotBefore.UTC().Format(time.DateOnly), k.Cert.NotAfter.UTC().Format(time.DateOnly))})
		p.log.Info("S/MIME key rollover: new certificate published", "endpoint", ep.Address, "serial", fmt.Sprintf("%x", k.Cert.SerialNumber))
	}
	return changed, errors.Join(errs...)
}
