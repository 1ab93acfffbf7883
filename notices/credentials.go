package notices

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// ErrUnauthenticated means a bearer token is missing, malformed, unknown
// or revoked (401).
var ErrUnauthenticated = errors.New("notices: missing, unknown or revoked notice credential")

func (s *Service) reloadCredentials(ctx context.Context) error {
	cs, err := s.store.Credentials(ctx)
	if err != nil {
		return fmt.Errorf("notices: load credentials: %w", err)
	}
	m := make(map[string]Credential, len(cs))
	for _, c := range cs {
		m[c.ID] = c
	}
	s.credMu.Lock()
	s.creds = m
	s.credMu.Unlock()
	return nil
}

// Authenticate returns the live credential a bearer token names.
func (s *Service) Authenticate(token string) (Credential, error) {
	id, secret, ok := parseToken(token)
	if !ok {
		return Credential{}, ErrUnauthenticated
	}
	s.credMu.RLock()
	c, found := s.creds[id]
	s.credMu.RUnlock()
	if !found || !c.Revoked.IsZero() || !c.matches(secret) {
		return Credential{}, ErrUnauthenticated
	}
	return c, nil
}

// AddCredential makes a credential for a sending system, scoped to orgs
// (each must be in the directory), and returns its token, shown once.
func (s *Service) AddCredential(ctx context.Context, name string, orgs []string, webhook string) (Credential, string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 {
		return Credential{}, "", &ValidationError{Fields: []FieldError{{Field: "name", Problem: "required, at most 100 characters"}}}
	}
	if len(orgs) == 0 {
		return Credential{}, "", &ValidationError{Fields: []FieldError{{Field: "organisations", Problem: "at least one ODS code"}}}
	}
	ve := &ValidationError{}
	for i, o := range orgs {
		orgs[i] = strings.ToUpper(strings.TrimSpace(o))
		if _, err := s.cfg.Organisations.Organisation(ctx, orgs[i]); err != nil {
			ve.add(fmt.Sprintf("organisations[%d]", i), "%s is not an organisation in the directory", orgs[i])
		}
	}
	if webhook != "" {
		if u, err := url.Parse(webhook); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			ve.add("webhook", "an http(s) URL")
		}
	}
	if len(ve.Fields) > 0 {
		return Credential{}, "", ve
	}
	slices.Sort(orgs)
	c, token := newCredential(name, slices.Compact(orgs), webhook, s.now())
	if err := s.store.PutCredential(ctx, c); err != nil {
		return Credential{}, "", err
	}
	s.auditCredential(ctx, "notice.credential_added", c, "for "+strings.Join(c.Organisations, ", "))
	return c, token, s.reloadCredentials(ctx)
}

// RevokeCredential ends a credential at once; its notices stay.
func (s *Service) RevokeCredential(ctx context.Context, id string) error {
	s.credMu.RLock()
	c, ok := s.creds[id]
	s.credMu.RUnlock()
	if !ok {
		return fmt.Errorf("credential %q: %w", id, ErrNotFound)
	}
	if c.Revoked.IsZero() {
		c.Revoked = s.now()
		if err := s.store.PutCredential(ctx, c); err != nil {
			return err
		}
		s.auditCredential(ctx, "notice.credential_revoked", c, "")
	}
	return s.reloadCredentials(ctx)
}

// Credentials lists every credential, revoked ones too, without secrets.
func (s *Service) Credentials(ctx context.Context) ([]Credential, error) {
	cs, err := s.store.Credentials(ctx)
	for i := range cs {
		cs[i].SecretHash, cs[i].WebhookSecret = "", ""
	}
	return cs, err
}

func (s *Service) auditCredential(ctx context.Context, action string, c Credential, detail string) {
	if s.cfg.Audit == nil {
		return
	}
	ev := auditEvent(ctx, s.now(), action, "credential "+c.ID+" ("+c.Name+") "+detail)
	if err := s.cfg.Audit.Record(ev); err != nil {
		s.log.Error("audit record failed", "action", action, "err", err)
	}
}
