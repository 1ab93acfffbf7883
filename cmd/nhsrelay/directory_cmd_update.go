package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"nhsrelay/directory"
)

// parseHop reads a next hop as the CLI takes it: mx, hosted, or host:port.
func parseHop(hop string, plainLoopback bool) directory.NextHop {
	h := directory.NextHop{Kind: directory.NextHopKind(hop)}
	if hop != string(directory.HopMX) && hop != string(directory.HopHosted) {
		h = directory.NextHop{Kind: directory.HopHost, Host: hop}
	}
	if plainLoopback {
		h.TLS = directory.TLSPlainLoopback
	}
	return h
}

// setHop changes an endpoint's next hop without retiring it: the directory
// keeps its verification (the address and organisation are unchanged) and
// audits the change (endpoint.updated "changed next_hop").
func (d *dirCmd) setHop(ctx context.Context, args []string) error {
	hop := parseHop(args[1], d.o.plain)
	e, err := d.update(ctx, args[0], func(e *directory.Endpoint) { e.NextHop = hop })
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "%s: %s: next hop now %s; %s\n", e.ID, e.Address, hopWords(e.NextHop), e.Status)
	return nil
}

// setContact replaces an endpoint's contacts (-none removes them).
func (d *dirCmd) setContact(ctx context.Context, args []string) error {
	contacts := args[1:]
	switch {
	case d.o.none && len(contacts) > 0:
		return errors.New("set-contact: give CONTACTs or -none, not both")
	case !d.o.none && len(contacts) == 0:
		return errors.New("set-contact: give at least one CONTACT (or -none to remove them all)")
	}
	e, err := d.update(ctx, args[0], func(e *directory.Endpoint) { e.Contacts = contacts })
	if err != nil {
		return err
	}
	if len(e.Contacts) == 0 {
		fmt.Fprintf(d.out, "%s: %s: contacts removed\n", e.ID, e.Address)
	} else {
		fmt.Fprintf(d.out, "%s: %s: contacts now %s\n", e.ID, e.Address, strings.Join(e.Contacts, "; "))
	}
	return nil
}

// update reads the endpoint, lets change edit it, and writes back the
// fields an administrator sets (PUT /v1/directory/endpoints/{id}), so
// everything else stays as it was.
func (d *dirCmd) update(ctx context.Context, arg string, change func(*directory.Endpoint)) (directory.Endpoint, error) {
	e, err := d.resolve(ctx, arg)
	if err != nil {
		return e, err
	}
	change(&e)
	body := map[string]any{"address": e.Address, "ods": e.ODS, "purpose": e.Purpose, "next_hop": e.NextHop,
		"certificates": e.Certificates, "tls_only": e.TLSOnly, "tls_only_evidence": e.TLSOnlyEvidence,
		"fax_numbers": e.FaxNumbers, "contacts": e.Contacts}
	var out directory.Endpoint
	if err := d.c.do(ctx, http.MethodPut, dirAPI+"/endpoints/"+url.PathEscape(e.ID), body, &out); err != nil {
		return out, err
	}
	return out, nil
}

func hopWords(h directory.NextHop) string {
	switch h.Kind {
	case directory.HopHosted:
		return "hosted here"
	case directory.HopHost:
		if h.TLS == directory.TLSPlainLoopback {
			return "smtp to " + h.Host + " (plain, loopback only)"
		}
		return "smtp to " + h.Host + " (verified TLS)"
	}
	return "MX of its domain (verified TLS)"
}
