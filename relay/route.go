package relay

import (
	"context"
	"errors"
	"strings"

	"nhsrelay/directory"
	"nhsrelay/relay/queue"
)

// target is where one recipient's copy goes.
type target struct {
	ep directory.Endpoint
	to string // the address used on the wire (RCPT TO) and in Delivered-To
	// redirect is the directory's answer when an administrator's redirect
	// was followed (only from a Directory that is a resolver), for the
	// endpoint.redirect_followed audit event; nil otherwise.
	redirect *directory.Resolution
}

// resolver is an optional ability of a Directory: Resolve is
// CheckRecipient with the whole answer, the endpoint the address named as
// well as where its mail goes, so that a redirect followed can be audited.
// *directory.Directory has it; a Directory without it is asked
// CheckRecipient, and redirects it follows are delivered but not audited
// as such (the delivered event still names the address delivered to).
type resolver interface {
	Resolve(ctx context.Context, addr string) (directory.Resolution, error)
}

// checkRecipient asks the directory's policy where mail for addr goes now,
// with the Resolution when a redirect is followed and the Directory can
// say so.
func (r *Relay) checkRecipient(ctx context.Context, addr string) (directory.Endpoint, *directory.Resolution, error) {
	res, ok := r.cfg.Directory.(resolver)
	if !ok {
		ep, err := r.cfg.Directory.CheckRecipient(ctx, addr)
		return ep, nil, err
	}
	rs, err := res.Resolve(ctx, addr)
	if err != nil {
		return directory.Endpoint{}, nil, err
	}
	if !rs.Redirected {
		return rs.Target, nil, nil
	}
	return rs.Target, &rs, nil
}

// route asks the directory's policy about one recipient again at delivery
// time: the intake checked it at RCPT, but an endpoint may have been
// suspended, retired or redirected since. A redirect is followed to its
// target (and recorded in the target, for report to audit). Mail for an endpoint that may no longer receive clinical mail is
// not delivered; see policyFailure for what happens to it instead.
//
// System mail is the exception (see systemRoute).
func (r *Relay) route(ctx context.Context, m queue.Message, addr string) (target, *result) {
	if isNotice(m) {
		return r.noticeRoute(ctx, addr)
	}
	ep, redirect, err := r.checkRecipient(ctx, addr)
	if err == nil {
		return target{ep: ep, to: wireAddress(ep, addr), redirect: redirect}, nil
	}
	if m.System {
		if t, ok := r.systemRoute(ctx, m, addr, err); ok {
			return t, nil
		}
	}
	res := policyFailure(err)
	if res.outcome == temporary {
		r.log.Error("directory policy check failed", "msgid", m.ID, "rcpt", addr, "err", err)
	}
	return target{}, &res
}

// isDSN reports whether m is a delivery status notification this relay
// made: System mail with a null reverse-path.
func isDSN(m queue.Message) bool { return m.System && m.From == "" }

// systemRoute routes the relay's own, non-clinical mail (Envelope.System:
// verification challenges, administrators' summaries, DSNs) where the
// clinical policy refused it:
//
//   - to the endpoint the address names (no redirect) when it is pending
//     or suspended: a verification challenge is how such an endpoint
//     becomes verified again. Never to a retired endpoint.
//   - a DSN to an address that is not a live endpoint goes to the MX hosts
//     of its domain over verified TLS (never plain): the sender of a
//     message submitted here gets its DSNs even when its address is not in
//     the directory. DSNs carry no Subject when they can leave this relay
//     (see Relay.sendDSN), so nothing clinical travels outside S/MIME.
//
// Anything else is refused as clinical mail would be.
func (r *Relay) systemRoute(ctx context.Context, m queue.Message, addr string, refusal error) (target, bool) {
	ep, err := r.cfg.Directory.Lookup(ctx, addr)
	switch {
	case err == nil && (ep.Status == directory.StatusPending || ep.Status == directory.StatusSuspended ||
		ep.Status == directory.StatusVerified):
		return target{ep: ep, to: wireAddress(ep, addr)}, true
	case isDSN(m) && (errors.Is(err, directory.ErrNotFound) || err == nil && ep.Status == directory.StatusRetired && !ep.Hosted()):
		mx := directory.Endpoint{Address: addr, Status: ep.Status,
			NextHop: directory.NextHop{Kind: directory.HopMX, TLS: directory.TLSVerified}}
		r.log.Info("DSN to an address outside the directory goes to its domain's MX", "msgid", m.ID, "rcpt", addr)
		return target{ep: mx, to: addr}, true
	}
	return target{}, false
}

// policyFailure maps the directory's refusal at delivery time to a
// recipient outcome, told to the sender in words:
//
//   - unknown address: failed, 5.1.1 (RFC 3463 §3.2).
//   - suspended or retired endpoint (or a verification that has expired,
//     or a redirect to nowhere): failed, 5.7.1 with the directory's reason
//     (§3.8). A suspension may be lifted, but clinical mail must not wait
//     days on it unseen: the sender is told now and can send again.
//   - pending endpoint (not verified yet, or being verified again): held,
//     5.7.1. The sender is told at once (Action: delayed); the recipient
//     is looked at again at each retry and delivered if the endpoint is
//     verified before the give-up time, failed then otherwise.
//   - no usable S/MIME certificate (NotVerifiedError.NoCertificate: the
//     endpoint's certificate expired or was revoked after the message was
//     accepted): held the same way, 5.7.5 (RFC 3463 §3.8, a needed key
//     is not available), until a certificate is renewed or it is given up.
//   - the directory did not answer: retried.
func policyFailure(err error) result {
	var nv *directory.NotVerifiedError
	switch {
	case errors.Is(err, directory.ErrNotFound):
		return failure(permanent, 1, 1, "no verified NHS endpoint has this address any more")
	case errors.As(err, &nv) && nv.NoCertificate:
		return failure(held, 7, 5, refusalWords(nv))
	case errors.As(err, &nv) && nv.Status == directory.StatusPending:
		return failure(held, 7, 1, "endpoint not verified for clinical mail: "+refusalWords(nv))
	case errors.As(err, &nv):
		return failure(permanent, 7, 1, "endpoint not verified for clinical mail: "+refusalWords(nv))
	default:
		return failure(temporary, 3, 0, "directory lookup failed; will retry")
	}
}

// refusalWords is a NotVerifiedError's reason for a person, with the
// successor the directory names, if any.
func refusalWords(nv *directory.NotVerifiedError) string {
	s := nv.Reason
	if s == "" {
		s = string(nv.Status)
	}
	if nv.Successor != "" {
		s += "; successor: " + nv.Successor
	}
	return s
}

// wireAddress is the address ep receives a recipient's copy at: the
// recipient itself when ep is its own endpoint (its mailbox, or the domain
// it is in), otherwise — an administrator's redirect — ep's address, or
// for a domain endpoint its postmaster (RFC 5321 §4.5.1: every domain has
// one).
func wireAddress(ep directory.Endpoint, addr string) string {
	if strings.Contains(ep.Address, "@") {
		if strings.EqualFold(ep.Address, addr) {
			return addr
		}
		return ep.Address
	}
	if strings.EqualFold(domainOf(addr), ep.Address) {
		return addr
	}
	return "postmaster@" + ep.Address
}
