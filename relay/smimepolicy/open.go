package smimepolicy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"nhsrelay/audit"
	"nhsrelay/certs"
	"nhsrelay/certs/smime"
	"nhsrelay/directory"
	"nhsrelay/relay"
	"nhsrelay/relay/queue"
)

// QuarantineError is why an inbound message was kept out of the mailbox.
// It wraps relay.ErrQuarantine, and the S/MIME cause (an *smime.OpenError)
// when there is one; its text goes to the sender's DSN.
type QuarantineError struct {
	ID     string // quarantine ID, for the administrator
	Reason string
	Err    error
}

func (e *QuarantineError) Error() string {
	return "quarantined by the receiving relay, not delivered: " + e.Reason
}

func (e *QuarantineError) Unwrap() []error {
	if e.Err == nil {
		return []error{relay.ErrQuarantine}
	}
	return []error{relay.ErrQuarantine, e.Err}
}

// maxInboundHeader bounds the outer header read for its Received fields;
// smtpd refuses larger headers before they are queued.
const maxInboundHeader = 1 << 20

// Open is relay.Opener. Mail that arrived over MX (m.Inbound) must be
// S/MIME: it is decrypted with ep's key, its signature and the signer's
// chain are verified against the Trust (anchors and CRLs), and the signer
// must belong to the organisation of every From address (and of the
// envelope sender): the signing certificate speaks for that organisation
// (its ODS code, from an organisation CA: certs.Trust.Organisation), or
// one of its addresses is an endpoint of that organisation. A null-sender
// message whose From is not in the directory is taken as another relay's
// delivery report if its signer speaks for an active organisation (see
// checkOrganisation; the trace then says "dsn" after the ODS code). The
// decrypted message goes to the mailbox under a trace header
//
//	X-NHSRelay-SMIME: verified; signer=<name>; ods=<ODS>[; dsn]; alg="<algorithms>"; by=<host>
//
// Anything else is quarantined (see quarantine) and Open returns a
// *QuarantineError.
//
// Two shapes of signed content are delivered (RFC 8551 §3.1):
//   - a whole RFC 5322 message (wrapped as message/rfc822, as Seal does,
//     or signed with its header, as openssl cms -sign does): its own
//     signed From is checked, and it is delivered after the outer
//     message's Received fields;
//   - a body entity with only MIME fields (Content-*), as Thunderbird and
//     Outlook sign: the From of the outer message is checked, and the
//     outer header (without its MIME fields, which described the
//     encryption) is delivered in front of the verified body entity.
//
// Two kinds of mail are exempt, both made known to the relay by itself,
// never by a client:
//   - mail submitted on this relay by an authenticated account (not
//     inbound, m.Account set): the account's authentication is its proof
//     of origin; delivered with "X-NHSRelay-SMIME: authenticated;
//     account=<user>; ods=<ODS>";
//   - the relay's own non-clinical mail (not inbound, m.System: its DSNs,
//     verification challenges, summaries), delivered with
//     "X-NHSRelay-SMIME: system; by=<host>".
//
// Everything else for a hosted endpoint — mail over MX, mail from trusted
// networks without an account, mail from a transaction that also had
// remote recipients (smtpd then clears m.Inbound), a null sender that is
// not the relay's own DSN — needs S/MIME exactly as mail over MX does,
// and plain mail is quarantined: "the message was not S/MIME encrypted;
// clinical mail to this endpoint must be".
//
// Both ways, any X-NHSRelay-SMIME field the message already carries is
// removed: only this relay's own statement reaches the mailbox.
func (p *Policy) Open(ctx context.Context, m queue.Message, ep directory.Endpoint, body relay.Body, w io.Writer) error {
	switch {
	case !m.Inbound && m.Account != "":
		return p.openAuthenticated(ctx, m, body, w)
	case !m.Inbound && m.System:
		return p.openSystem(body, w)
	}
	return p.openSMIME(ctx, m, ep, body, w)
}

// openSMIME decrypts and verifies, or quarantines.
func (p *Policy) openSMIME(ctx context.Context, m queue.Message, ep directory.Endpoint, body relay.Body, w io.Writer) error {
	kp, err := p.keyPair(endpointKeyName(ep.Address))
	if err != nil {
		// Nothing is wrong with the message: retried until the key is
		// installed (then delivered), or until the relay gives up.
		p.log.Error("no decryption key for hosted endpoint", "msgid", m.ID, "endpoint", ep.Address, "err", err)
		return fmt.Errorf("smimepolicy: open %s for %s: %w", m.ID, ep.Address, err)
	}
	rr := &readErr{r: body}
	br := bufio.NewReaderSize(rr, 64<<10)
	outer, _, err := readHeaderBlock(br, maxInboundHeader)
	if err != nil {
		return fmt.Errorf("smimepolicy: open %s: read: %w", m.ID, err)
	}
	now := p.cfg.Now()
	opened, err := smime.OpenWith(io.MultiReader(bytes.NewReader(outer), br), *kp, p.Trust(), now)
	if rr.err != nil { // the spool, not the message: retry
		return fmt.Errorf("smimepolicy: open %s: read: %w", m.ID, rr.err)
	}
	if err != nil {
		return p.quarantine(ctx, m, ep, body, openReason(err), err)
	}
	inner, _, _ := readHeaderBlock(bufio.NewReader(bytes.NewReader(opened.Message)), maxInboundHeader)
	// RFC 8551 §3.1: a signed body entity carries no From of its own; the
	// message's From is in the outer header, and must be the signer's
	// organisation's just as a signed From must.
	entity := isEntityHeader(inner)
	fromHeader := inner
	if entity {
		fromHeader = outer
	}
	org, err := p.checkOrganisation(ctx, m, opened, fromHeader)
	if err != nil {
		return err
	}
	if org.reason != "" {
		return p.quarantine(ctx, m, ep, body, org.reason, nil)
	}
	ods := org.ods
	signer := certs.Name(opened.Signer)
	kind := ""
	if org.report {
		kind = "; dsn"
	}
	trace := fmt.Sprintf("%s: verified; signer=%s; ods=%s%s; alg=%s; by=%s\r\n",
		TraceHeader, clean(signer), clean(ods), kind, strconv.Quote(clean(opened.Algorithms)), p.cfg.Hostname)
	if _, err := io.WriteString(w, trace); err != nil {
		return err
	}
	if entity {
		// The outer header, without the fields that described the
		// encryption (Content-Type: application/pkcs7-mime, its
		// Content-Disposition and Content-Transfer-Encoding), then the
		// verified body entity with its own MIME fields.
		if _, err := w.Write(messageFields(outer, TraceHeader)); err != nil {
			return err
		}
		if _, err := io.WriteString(w, "MIME-Version: 1.0\r\n"); err != nil {
			return err
		}
		if _, err := w.Write(opened.Message); err != nil {
			return err
		}
	} else {
		if _, err := w.Write(rawFields(outer, "Received")); err != nil {
			return err
		}
		if err := copyStripped(w, bytes.NewReader(opened.Message), TraceHeader); err != nil {
			return err
		}
	}
	what := "decrypted and verified"
	if org.report {
		what = "delivery report decrypted and verified (null sender, From not in the directory, signed for an active organisation)"
	}
	p.record(audit.Event{Action: "smime.opened", QueueID: m.ID, Endpoint: ep.Address, Outcome: "ok",
		Detail: audit.WithFields(fmt.Sprintf("%s: signer %s (serial %s), organisation %s, %s", what, clean(signer),
			opened.Signer.SerialNumber, ods, clean(opened.Algorithms)),
			audit.Fields{"rcpt": ep.Address, "signer_sha256": fingerprint(opened.Signer), "alg": clean(opened.Algorithms)})})
	if opened.LegacyKeyTransport {
		p.record(audit.Event{Action: "smime.legacy_key_transport", QueueID: m.ID, Endpoint: ep.Address, Outcome: "ok",
			Detail: "inbound content key came by RSA PKCS#1 v1.5 from " + clean(signer)})
		p.log.Warn("inbound legacy PKCS#1 v1.5 key transport", "msgid", m.ID, "endpoint", ep.Address, "signer", signer)
	}
	return nil
}

// reasonNotEncrypted is why plain (or only signed) mail for a hosted
// endpoint is quarantined.
const reasonNotEncrypted = "the message was not S/MIME encrypted; clinical mail to this endpoint must be"

// openReason is the quarantine reason for an smime.Open failure. It goes
// into the sender's DSN, the owner's notice, the quarantine record (kept
// in clear) and the audit log, so it must hold nothing from inside the
// message: reasons that could quote the decrypted content are replaced by
// fixed ones, and every reason is made one bounded line of printable
// text.
func openReason(err error) string {
	var oe *smime.OpenError
	switch {
	case errors.Is(err, smime.ErrNotEncrypted):
		return reasonNotEncrypted
	case !errors.As(err, &oe) || oe.Reason == "":
		return reasonNotVerified
	}
	switch oe.Kind {
	// These reasons are built only from the outer header, certificates
	// and algorithm names, never from the decrypted content.
	case smime.ErrCannotDecrypt, smime.ErrWeakAlgorithm, smime.ErrTampered,
		smime.ErrUntrustedSigner, smime.ErrExpiredSigner, smime.ErrMalformed:
		return oneLine(oe.Reason)
	}
	// Any other kind (a signature that is not S/MIME, say) might name
	// something found inside the decrypted message.
	return reasonNotVerified
}

// reasonNotVerified is the reason for a failure whose own words are not
// known to be free of message content.
const reasonNotVerified = "the message could not be decrypted and verified as S/MIME signed"

// oneLine makes s printable ASCII on one line of at most 300 bytes.
func oneLine(s string) string {
	const max = 300
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	if len(b) > max {
		b = append(b[:max-3], "..."...)
	}
	return string(b)
}

// readErr remembers an error of the underlying reader, to tell a spool
// failure (retry) from a bad message (quarantine).
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// orgVerdict is what checkOrganisation makes of a verified message: the
// organisation it is from, or why it is quarantined.
type orgVerdict struct {
	ods    string // the sender's organisation
	reason string // non-empty: quarantine, for this reason
	report bool   // accepted as another relay's delivery report (see reportSigner)
}

// checkOrganisation returns the organisation the message is from, or a
// reason to quarantine it. Addresses checked: every From field address of
// the message and the envelope sender (unless null). The signer belongs
// to an organisation if its certificate speaks for it (an ODS code from
// an NHS organisation CA, certs.Trust.Organisation) or one of its
// addresses is an endpoint of it. A directory failure is an error
// (retry), not a reason.
//
// A delivery report from another relay comes from the null reverse-path
// (RFC 5321 §4.5.5, RFC 3464 §2) under a From such as
// MAILER-DAEMON@<that relay>, which names no endpoint; it is accepted when
// the signer speaks for an active organisation in the directory, as
// nhsrelay signs its DSNs with its organisation's key (reportSigner).
func (p *Policy) checkOrganisation(ctx context.Context, m queue.Message, opened *smime.Opened, inner []byte) (orgVerdict, error) {
	froms, ok := fromAddresses(inner)
	if !ok {
		return orgVerdict{reason: "the message has no From address that can be read, so its signer cannot be checked against the NHS directory"}, nil
	}
	if m.From != "" {
		froms = append(froms, m.From)
	}
	signerODS, hasODS := opened.SignerODSCode()
	signerOrgs := map[string]bool{}
	if hasODS {
		signerODS = strings.ToUpper(signerODS)
		signerOrgs[signerODS] = true
	}
	for _, a := range opened.SignerAddresses() {
		sep, err := p.cfg.Directory.Lookup(ctx, a)
		if errors.Is(err, directory.ErrNotFound) {
			continue
		}
		if err != nil {
			return orgVerdict{}, fmt.Errorf("smimepolicy: look up signer %s: %w", a, err)
		}
		if sep.Status != directory.StatusRetired {
			signerOrgs[strings.ToUpper(sep.ODS)] = true
		}
	}
	signer := certs.Name(opened.Signer)
	var v orgVerdict
	for _, from := range froms {
		fep, err := p.cfg.Directory.Lookup(ctx, from)
		if errors.Is(err, directory.ErrNotFound) {
			if m.From != "" {
				return orgVerdict{reason: fmt.Sprintf("the sender %s is not in the NHS directory, so the signature by %s cannot be tied to its organisation", from, signer)}, nil
			}
			why, err := p.reportSigner(ctx, opened, signerODS, hasODS)
			if err != nil {
				return orgVerdict{}, err
			}
			if why != "" {
				return orgVerdict{reason: fmt.Sprintf("the sender %s is not in the NHS directory, and %s", from, why)}, nil
			}
			v.report = true
			if v.ods == "" {
				v.ods = signerODS
			}
			continue
		}
		if err != nil {
			return orgVerdict{}, fmt.Errorf("smimepolicy: look up sender %s: %w", from, err)
		}
		org := strings.ToUpper(fep.ODS)
		if org == "" || !signerOrgs[org] {
			return orgVerdict{reason: mismatch(opened, signer, org, from)}, nil
		}
		v.ods = org
	}
	return v, nil
}

// mismatch is why a signer is not tied to the sender's organisation org.
func mismatch(opened *smime.Opened, signer, org, from string) string {
	if _, speaks := opened.SignerODSCode(); !speaks {
		if claimed, ok := certs.ODSCode(opened.Signer); ok {
			// Any CA can write an ODS code into a subject; only an NHS
			// organisation CA's word on it counts (certs.Trust.OrgCAs).
			return fmt.Sprintf("the message is signed by a certificate that claims organisation %s but is not issued by an NHS organisation CA, "+
				"so the signature cannot be tied to organisation %s that the sender %s belongs to", strings.ToUpper(claimed), org, from)
		}
	}
	return fmt.Sprintf("the message is signed by %s, which does not belong to organisation %s that the sender %s belongs to", signer, org, from)
}

// reportSigner decides whether a null-sender message whose From is not in
// the directory is another relay's delivery report: "" if its signer
// speaks for an active organisation in the directory (signerODS, from an
// NHS organisation CA), else why not, completing "the sender … is not in
// the NHS directory, and …". A directory failure is an error (retry).
func (p *Policy) reportSigner(ctx context.Context, opened *smime.Opened, signerODS string, hasODS bool) (string, error) {
	signer := certs.Name(opened.Signer)
	if !hasODS {
		if claimed, ok := certs.ODSCode(opened.Signer); ok {
			return fmt.Sprintf("the signing certificate claims organisation %s but is not issued by an NHS organisation CA, "+
				"so it cannot vouch for a delivery report", strings.ToUpper(claimed)), nil
		}
		return fmt.Sprintf("the signature by %s is not an NHS organisation's, so it cannot be tied to an organisation "+
			"(a delivery report from an address outside the directory must be signed with its relay's organisation certificate)", signer), nil
	}
	o, err := p.cfg.Directory.Organisation(ctx, signerODS)
	if errors.Is(err, directory.ErrNotFound) {
		return fmt.Sprintf("organisation %s, which signed it, is not in the NHS directory", signerODS), nil
	}
	if err != nil {
		return "", fmt.Errorf("smimepolicy: look up organisation %s: %w", signerODS, err)
	}
	if o.Status != directory.OrgActive {
		return fmt.Sprintf("organisation %s, which signed it, is %s in the NHS directory, not active", signerODS, o.Status), nil
	}
	return "", nil
}

// openAuthenticated delivers mail an account submitted on this relay,
// with a trace header naming the account and its organisation.
func (p *Policy) openAuthenticated(ctx context.Context, m queue.Message, body io.Reader, w io.Writer) error {
	ods := "unknown"
	if p.cfg.Accounts != nil {
		if a, err := p.cfg.Accounts.Account(ctx, m.Account); err == nil && a.ODS != "" {
			ods = a.ODS
		}
	}
	trace := fmt.Sprintf("%s: authenticated; account=%s; ods=%s; by=%s (submitted on this relay; not S/MIME signed)\r\n",
		TraceHeader, clean(m.Account), clean(ods), p.cfg.Hostname)
	if _, err := io.WriteString(w, trace); err != nil {
		return err
	}
	return copyStripped(w, body, TraceHeader)
}

// openSystem delivers the relay's own mail (queue.Message.System), which
// no client can mark as such.
func (p *Policy) openSystem(body io.Reader, w io.Writer) error {
	trace := fmt.Sprintf("%s: system; by=%s (generated by this relay; not clinical, not S/MIME signed)\r\n", TraceHeader, p.cfg.Hostname)
	if _, err := io.WriteString(w, trace); err != nil {
		return err
	}
	return copyStripped(w, body, TraceHeader)
}

// clean makes a value safe inside the trace header: printable ASCII
// without the header's own separators; anything else becomes '?'. A
// certificate's names come from outside, even when a trusted CA signed
// them.
func clean(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e || c == ';' || c == '"' || c == '\\' {
			b[i] = '?'
		}
	}
	if len(b) == 0 {
		return "unknown"
	}
	return string(b)
}
