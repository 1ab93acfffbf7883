package smimepolicy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"nhsrelay/audit"
	"nhsrelay/certs"
	"nhsrelay/directory"
)

// Key rollover: a hosted endpoint may hold several decryption pairs in
// KeysDir (certs.EndpointKeys says which are there and which is current).
// The current pair's certificate is published in the directory
// (PublishKeys), so senders encrypt to it; every pair is still tried for
// decryption (certs/smime.OpenWithKeys picks the one the message names),
// so mail encrypted to an older certificate before the sender saw the new
// one is still read — until the old pair's files are removed.

// endpointKeys returns addr's loaded pairs, current first, then the others
// newest first. ErrNoKey if there is none.
func (p *Policy) endpointKeys(addr string) ([]certs.KeyPair, error) {
	var pairs []certs.KeyPair
	var firstErr error
	for _, n := range certs.EndpointKeyNames(p.cfg.KeysDir, addr) {
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
	slices.SortStableFunc(pairs, func(a, b certs.KeyPair) int { return certs.NewerFirst(a.Cert, b.Cert, now) })
	return pairs, nil
}

// EndpointKeys is certs.EndpointKeys for the policy's KeysDir, now.
func (p *Policy) EndpointKeys() []certs.EndpointKeyFile {
	return certs.EndpointKeys(p.cfg.KeysDir, p.cfg.Now())
}

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
		kp, err := p.keyPair(k.Name)
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
