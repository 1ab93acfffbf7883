package smimepolicy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"time"

	"nhsrelay/audit"
	"nhsrelay/certs"
	"nhsrelay/certs/smime"
	"nhsrelay/directory"
	"nhsrelay/relay"
	"nhsrelay/relay/queue"
)

// HoldError is why a recipient cannot be sent to safely. It wraps
// relay.ErrHold; its text is the reason alone, which the relay puts in the
// sender's DSN ("certificate for results@a81001.nhs.test expired on
// 2026-10-01").
type HoldError struct {
	Endpoint string // address of the endpoint held
	Reason   string
	Err      error // the cause, such as a *certs.CertificateError; may be nil
}

func (e *HoldError) Error() string { return e.Reason }

// Unwrap lets errors.Is find relay.ErrHold and the certs sentinels.
func (e *HoldError) Unwrap() []error {
	if e.Err == nil {
		return []error{relay.ErrHold}
	}
	return []error{relay.ErrHold, e.Err}
}

// maxOuterHeader bounds how much of the original header is read for the
// outer From/To/Date/Message-ID; smtpd refuses larger headers anyway.
const maxOuterHeader = 256 << 10

// CheckRecipient is relay.RecipientChecker: it holds one recipient that has
// no valid encryption certificate before it is grouped with others.
func (p *Policy) CheckRecipient(ctx context.Context, m queue.Message, ep directory.Endpoint) error {
	if ep.TLSOnly {
		return nil
	}
	_, err := p.recipientCert(p.Trust(), ep, p.cfg.Now())
	if err != nil && m.System {
		return nil // the relay's own mail goes without S/MIME; Seal audits it
	}
	if err != nil {
		p.holdEvent(m, ep, err)
	}
	return err
}

// Seal is relay.Sealer: it signs body with the sending organisation's key
// and encrypts it to every recipient's valid certificate plus the sending
// organisation's own, or refuses with a *HoldError saying why. When every
// recipient is an administrator's TLS-only exception the body goes as it
// is (over the relay's verified TLS); the relay gives TLS-only recipients
// a transaction of their own, so a TLS-only recipient grouped with others
// is only reached when it too has a valid certificate. The relay's own
// System mail (m.System) is sealed when it can be, and otherwise sent as
// it is, audited as smime.system_unsealed, never held.
func (p *Policy) Seal(ctx context.Context, m queue.Message, rcpts []directory.Endpoint, body io.Reader, w io.Writer) error {
	now, trust := p.cfg.Now(), p.Trust()
	if allTLSOnly(rcpts) {
		for _, ep := range rcpts {
			p.record(audit.Event{Action: "smime.tls_only", QueueID: m.ID, Endpoint: epName(ep), Outcome: "ok",
				Detail: "sent without S/MIME: the endpoint is an administrator's TLS-only exception; verified TLS only"})
		}
		_, err := io.Copy(w, body)
		return err
	}
	if m.System {
		for _, ep := range rcpts {
			if _, err := p.recipientCert(trust, ep, now); err != nil {
				return p.sendSystemUnsealed(m, rcpts, "no valid certificate ("+err.Error()+")", body, w)
			}
		}
	}
	var to []*x509.Certificate
	var legacy []string
	for _, ep := range rcpts {
		c, err := p.recipientCert(trust, ep, now)
		if err != nil {
			p.holdEvent(m, ep, err)
			return err
		}
		to = append(to, c)
		if p.legacyAllowed(ep) {
			legacy = append(legacy, epName(ep))
		}
	}
	signer, ods, err := p.signer(ctx, trust, m, now)
	if err != nil && m.System && errors.Is(err, relay.ErrHold) {
		return p.sendSystemUnsealed(m, rcpts, "it cannot be signed: "+err.Error(), body, w)
	}
	if err != nil {
		for _, ep := range rcpts {
			if errors.Is(err, relay.ErrHold) {
				p.holdEvent(m, ep, err)
			}
		}
		return err
	}
	sent := p.sentCopyCert(ctx, trust, m, signer, ods, now)
	sentCopy := sent != nil
	if sentCopy {
		to = append(to, sent) // the sending organisation reads its sent copy
	} else {
		p.log.Warn("no certificate of the sending organisation can receive encrypted mail: no readable sent copy", "msgid", m.ID, "ods", ods)
	}

	br := bufio.NewReaderSize(body, 64<<10)
	hdr, _, err := readHeaderBlock(br, maxOuterHeader)
	if err != nil {
		return fmt.Errorf("smimepolicy: seal %s: read header: %w", m.ID, err)
	}
	s := smime.Sealer{Now: p.cfg.Now, LegacyKeyTransport: func(c *x509.Certificate) bool {
		for i, rc := range to[:len(rcpts)] {
			if rc == c && p.legacyAllowed(rcpts[i]) {
				return true
			}
		}
		return false
	}}
	err = s.Seal(w, io.MultiReader(bytes.NewReader(hdr), br), signer, to, outerHeader(hdr, m))
	if err != nil {
		return fmt.Errorf("smimepolicy: seal %s: %w", m.ID, err)
	}
	for i, ep := range rcpts {
		kt := "RSAES-OAEP-SHA256"
		if p.legacyAllowed(ep) {
			kt = "RSA PKCS#1 v1.5"
		}
		p.record(audit.Event{Action: "smime.sealed", QueueID: m.ID, Endpoint: epName(ep), Outcome: "ok",
			Detail: audit.WithFields(fmt.Sprintf("signed SHA-256 by ODS %s (serial %s); encrypted AES-256-CBC, %s to %s (serial %s, until %s); sent copy: %t",
				ods, signer.Cert.SerialNumber, kt, certs.Name(to[i]), to[i].SerialNumber, to[i].NotAfter.UTC().Format(time.DateOnly), sentCopy),
				audit.Fields{"rcpt": epName(ep), "alg": "SHA-256, AES-256-CBC, " + kt, // for the message timeline
					"signer_sha256": fingerprint(signer.Cert), "cert_sha256": fingerprint(to[i])})})
	}
	for _, name := range legacy {
		p.record(audit.Event{Action: "smime.legacy_key_transport", QueueID: m.ID, Endpoint: name, Outcome: "ok",
			Detail: "content key sent with RSA PKCS#1 v1.5, allowed for this endpoint by configuration"})
		p.log.Warn("legacy PKCS#1 v1.5 key transport", "msgid", m.ID, "endpoint", name)
	}
	return nil
}

// sendSystemUnsealed sends the relay's own, non-clinical mail
// (relay.Envelope.System: verification challenges go to endpoints that
// have no certificate yet) as it is, over the relay's verified TLS, when
// it cannot be sealed for every recipient, and audits why for each.
func (p *Policy) sendSystemUnsealed(m queue.Message, rcpts []directory.Endpoint, why string, body io.Reader, w io.Writer) error {
	for _, ep := range rcpts {
		p.record(audit.Event{Action: "smime.system_unsealed", QueueID: m.ID, Endpoint: epName(ep), Outcome: "ok",
			Detail: "system mail sent without S/MIME: " + why + "; verified TLS only"})
	}
	p.log.Info("system mail sent without S/MIME", "msgid", m.ID, "recipients", len(rcpts))
	_, err := io.Copy(w, body)
	return err
}

func allTLSOnly(eps []directory.Endpoint) bool {
	for _, ep := range eps {
		if !ep.TLSOnly {
			return false
		}
	}
	return len(eps) > 0
}

func epName(ep directory.Endpoint) string {
	if ep.Address != "" {
		return ep.Address
	}
	return ep.ID
}

func (p *Policy) legacyAllowed(ep directory.Endpoint) bool {
	return p.legacy[strings.ToLower(ep.Address)] || (ep.ID != "" && p.legacy[strings.ToLower(ep.ID)])
}

func (p *Policy) holdEvent(m queue.Message, ep directory.Endpoint, err error) {
	p.record(audit.Event{Action: "smime.held", QueueID: m.ID, Endpoint: epName(ep), Outcome: "held", Detail: err.Error()})
}

// recipientCert picks ep's encryption certificate: among the directory's
// certificates for ep that name it (RFC 8550 §3: the mailbox address, or
// for a domain endpoint an address in the domain), the valid one
// (trust.ValidateSMIME for encryption — dates, usages, key, chain, and
// not revoked — with the others as possible intermediates) that lasts
// longest. Otherwise a *HoldError with the reason of the newest
// certificate ("certificate for X was revoked on 2026-05-01").
//
// A certificate that names only the endpoint's organisation (its ODS code)
// is never an encryption certificate for the endpoint: it would let whoever
// holds the organisation's key read every endpoint of that organisation,
// including ones (a safeguarding team, a GP's own mailbox) the
// organisation's key holder must not read. Such certificates sign.
func (p *Policy) recipientCert(trust *certs.Trust, ep directory.Endpoint, now time.Time) (*x509.Certificate, error) {
	name := epName(ep)
	hold := func(err error, format string, args ...any) error {
		return &HoldError{Endpoint: name, Reason: fmt.Sprintf(format, args...), Err: err}
	}
	if len(ep.Certificates) == 0 {
		return nil, hold(nil, "no S/MIME encryption certificate for %s in the NHS directory", name)
	}
	var parsed []*x509.Certificate
	for _, der := range ep.Certificates {
		if c, err := x509.ParseCertificate(der); err == nil {
			parsed = append(parsed, c)
		}
	}
	if len(parsed) == 0 {
		return nil, hold(nil, "the S/MIME certificate for %s in the NHS directory cannot be read", name)
	}
	var best, newest *x509.Certificate
	var newestErr error
	for _, c := range parsed {
		if !namesEndpoint(c, ep) {
			continue
		}
		err := trust.ValidateSMIME(c, parsed, now, certs.Encrypt)
		if err == nil {
			if best == nil || c.NotAfter.After(best.NotAfter) {
				best = c
			}
			continue
		}
		if newest == nil || c.NotAfter.After(newest.NotAfter) {
			newest, newestErr = c, err
		}
	}
	switch {
	case best != nil:
		return best, nil
	case newest == nil && orgOnly(parsed, ep):
		return nil, hold(nil, "the S/MIME certificate in the NHS directory for %s names only organisation %s (ODS code), "+
			"which signs but cannot receive mail for one endpoint; it needs a certificate naming %s (RFC 8550 §3)",
			name, strings.ToUpper(ep.ODS), name)
	case newest != nil:
		var ce *certs.CertificateError
		if errors.As(newestErr, &ce) && !strings.EqualFold(ce.Subject, name) {
			return nil, hold(newestErr, "%s (the certificate in the NHS directory for %s)", newestErr, name)
		}
		return nil, hold(newestErr, "%s", newestErr)
	default:
		return nil, hold(nil, "the S/MIME certificate in the NHS directory for %s is for %s, not this endpoint (RFC 8550 §3)",
			name, certs.Name(parsed[0]))
	}
}

// namesEndpoint reports whether c is for ep (RFC 8550 §3): it names ep's
// address, or for a domain endpoint an address in that domain. An
// organisation's ODS code is not enough (see recipientCert), and a CA
// certificate stored beside the leaf (as an intermediate) is an issuer,
// never a recipient, whatever names it carries.
func namesEndpoint(c *x509.Certificate, ep directory.Endpoint) bool {
	addr := strings.ToLower(ep.Address)
	if addr == "" || c.IsCA {
		return false
	}
	for _, a := range certs.Addresses(c) {
		if a == addr || (!strings.Contains(addr, "@") && strings.HasSuffix(a, "@"+addr)) {
			return true
		}
	}
	return false
}

// orgOnly reports whether some certificate in cs names ep's organisation
// by ODS code and none names ep itself.
func orgOnly(cs []*x509.Certificate, ep directory.Endpoint) bool {
	found := false
	for _, c := range cs {
		if namesEndpoint(c, ep) {
			return false
		}
		if ods, ok := certs.ODSCode(c); ok && ep.ODS != "" && strings.EqualFold(ods, ep.ODS) {
			found = true
		}
	}
	return found
}

// signer is the sending organisation's pair: the account's organisation,
// or RelayODS for mail without an account. Its certificate must be valid
// for signing, or recipients would refuse the message anyway.
func (p *Policy) signer(ctx context.Context, trust *certs.Trust, m queue.Message, now time.Time) (smime.Signer, string, error) {
	ods := p.cfg.RelayODS
	who := "mail sent without an account"
	if m.Account != "" && p.cfg.Accounts != nil {
		a, err := p.cfg.Accounts.Account(ctx, m.Account)
		if err != nil {
			return smime.Signer{}, "", fmt.Errorf("smimepolicy: account %s: %w", m.Account, err) // deferred, retried
		}
		ods, who = a.ODS, "account "+m.Account
	}
	if ods == "" {
		return smime.Signer{}, "", &HoldError{Reason: "no organisation is configured to sign " + who + " on this relay, so it cannot be signed"}
	}
	kp, err := p.keyPair(orgKeyName(ods))
	if errors.Is(err, ErrNoKey) {
		return smime.Signer{}, "", &HoldError{Reason: "no S/MIME signing key is installed on this relay for organisation " + ods, Err: err}
	}
	if err != nil {
		p.log.Error("organisation signing key unusable", "msgid", m.ID, "ods", ods, "err", err)
		return smime.Signer{}, "", &HoldError{Reason: "the S/MIME signing key for organisation " + ods + " on this relay is unusable", Err: err}
	}
	if err := trust.ValidateSMIME(kp.Cert, kp.Chain, now, certs.Sign); err != nil {
		return smime.Signer{}, "", &HoldError{Reason: "the signing " + err.Error() + " (organisation " + ods + ")", Err: err}
	}
	return smime.Signer{Cert: kp.Cert, Chain: kp.Chain, Key: kp.Key}, strings.ToUpper(ods), nil
}

// outerHeader is what the sealed message shows in clear: From, To, Date
// and Message-ID of the original, addresses only (no display names, no
// Subject). A header that does not parse falls back to the envelope.
func outerHeader(hdr []byte, m queue.Message) smime.OuterHeader {
	var out smime.OuterHeader
	msg, err := mail.ReadMessage(bytes.NewReader(append(hdr, "\r\n"...)))
	if err == nil {
		out.From = addressesOnly(msg.Header.Get("From"))
		out.To = addressesOnly(msg.Header.Get("To"))
		if d, err := msg.Header.Date(); err == nil {
			out.Date = d
		}
		if id := strings.TrimSpace(msg.Header.Get("Message-Id")); id != "" && !strings.ContainsAny(id, "\r\n") {
			out.MessageID = id
		}
	}
	if len(out.From) == 0 && m.From != "" {
		out.From = []string{m.From}
	}
	return out
}

func addressesOnly(field string) []string {
	list, err := mail.ParseAddressList(field)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(list))
	for _, a := range list {
		out = append(out, a.Address)
	}
	return out
}

// sentCopyCert picks the certificate the sending organisation reads its
// sent copy with (issue 5: encrypt "plus the sender organisation's own").
// An RSA signing certificate can take it itself; an organisation signing
// key on P-256 cannot receive RSA key transport, so the copy goes to the
// sender's own endpoint certificate when the sender is an endpoint of the
// same organisation. nil means no readable sent copy (logged and audited
// by the caller).
func (p *Policy) sentCopyCert(ctx context.Context, trust *certs.Trust, m queue.Message, signer smime.Signer, ods string, now time.Time) *x509.Certificate {
	if trust.ValidateSMIME(signer.Cert, signer.Chain, now, certs.Encrypt) == nil {
		return signer.Cert
	}
	if m.From == "" {
		return nil
	}
	ep, err := p.cfg.Directory.Lookup(ctx, m.From)
	if err != nil || !strings.EqualFold(ep.ODS, ods) {
		return nil
	}
	c, err := p.recipientCert(trust, ep, now)
	if err != nil {
		return nil
	}
	return c
}

// fingerprint is the hex SHA-256 of a certificate's DER, as `openssl x509
// -fingerprint -sha256` shows it (without colons).
func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}
