package main

import (
	"errors"
	"fmt"

	"nhsrelay/certs"
)

// smimeTrustFiles are cfg's [smime] trust files; problems name their keys.
func smimeTrustFiles(c *config) certs.TrustFiles {
	return certs.TrustFiles{Anchors: c.SMIMETrustAnchors, OrgCAs: c.SMIMEOrgCAs, CRLs: c.SMIMECRLs, KeyPrefix: "smime."}
}

// smimeTrust checks smime.org_cas and smime.crls, and what the trust
// files hold once they all exist — certs.TrustFiles.Load, as serve and
// SIGHUP load them, so a file that would stop the server is a config
// problem first.
func (v *validator) smimeTrust(c *config, m fileSMIME) {
	for i, f := range m.OrgCAs {
		c.SMIMEOrgCAs = append(c.SMIMEOrgCAs, v.file(fmt.Sprintf("smime.org_cas[%d]", i), f, false))
	}
	for i, f := range m.CRLs {
		c.SMIMECRLs = append(c.SMIMECRLs, v.file(fmt.Sprintf("smime.crls[%d]", i), f, false))
	}
	if len(m.TrustAnchors) == 0 || !v.ok(fileKeys("smime.trust_anchors", len(m.TrustAnchors))...) ||
		!v.ok(fileKeys("smime.org_cas", len(m.OrgCAs))...) || !v.ok(fileKeys("smime.crls", len(m.CRLs))...) {
		return
	}
	_, problems := smimeTrustFiles(c).Load()
	for _, p := range problems {
		var te *certs.TrustFileError
		if errors.As(p, &te) {
			v.addf(te.Key, "%s", te.Problem)
		} else {
			v.addf("smime.trust_anchors", "%v", p)
		}
	}
}

// fileKeys names the n entries of a list key: key[0] … key[n-1].
func fileKeys(key string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s[%d]", key, i)
	}
	return out
}
