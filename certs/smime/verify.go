package smime

import (
	"bytes"
	"crypto"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	"nhsrelay/certs"
)

// signedResult is what a verified SignedData yields.
type signedResult struct {
	content     []byte // eContent, or the detached content passed in
	signer      *x509.Certificate
	certs       []*x509.Certificate // every certificate the message carried
	signingTime time.Time
}

// child returns n's i-th child or nil, so hostile input cannot index out
// of range.
func child(n *node, i int) *node {
	if n == nil || i < 0 || i >= len(n.children) {
		return nil
	}
	return n.children[i]
}

func oidOf(n *node) (asn1.ObjectIdentifier, bool) {
	if n == nil || !n.is(classUniversal, tagOID) || n.constructed {
		return nil, false
	}
	var oid asn1.ObjectIdentifier
	if _, err := asn1.Unmarshal(n.der(), &oid); err != nil {
		return nil, false
	}
	return oid, true
}

// verifySignedData checks a CMS SignedData ContentInfo (RFC 5652 §5). If
// detached is non-nil it is the content (multipart/signed); otherwise the
// content is the eContent inside. It checks the message digest, the
// content-type attribute (§11.1), the signature (§5.6), then the signer's
// certificate against roots at now.
func verifySignedData(ci *node, detached []byte, roots *x509.CertPool, now time.Time) (*signedResult, error) {
	malformed := func(what string) error {
		return openErr(ErrMalformed, "the signature is malformed ("+what+")", nil)
	}
	oid, ok := oidOf(child(ci, 0))
	if !ok || !oid.Equal(oidSignedData) {
		return nil, malformed("not CMS signed-data")
	}
	sd := child(child(ci, 1), 0)
	if sd == nil || !sd.is(classUniversal, tagSequence) || len(sd.children) < 4 {
		return nil, malformed("no SignedData")
	}
	encap := child(sd, 2)
	eType, ok := oidOf(child(encap, 0))
	if !ok {
		return nil, malformed("no content type")
	}
	content := detached
	if content == nil {
		ec := child(child(encap, 1), 0)
		if ec == nil || !ec.is(classUniversal, tagOctetString) {
			return nil, malformed("no signed content")
		}
		content = ec.octets()
	}
	res := &signedResult{content: content}
	var infos *node
	for _, c := range sd.children[3:] {
		switch {
		case c.is(classContext, 0) && c.constructed:
			for _, raw := range c.children {
				if !raw.is(classUniversal, tagSequence) {
					continue // attribute certificates and others: not used
				}
				cert, err := x509.ParseCertificate(raw.der())
				if err != nil {
					return nil, openErr(ErrMalformed, "a certificate in the signature cannot be parsed", err)
				}
				res.certs = append(res.certs, cert)
			}
		case c.is(classUniversal, tagSet):
			infos = c
		}
	}
	if infos == nil || len(infos.children) == 0 {
		return nil, openErr(ErrNotSigned, "the message carries a signature block with no signer", nil)
	}
	var firstErr error
	for _, si := range infos.children {
		signer, when, err := verifySignerInfo(si, eType, content, res.certs)
		if err == nil {
			res.signer, res.signingTime = signer, when
			break
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if res.signer == nil {
		return nil, firstErr
	}
	var others []*x509.Certificate
	for _, c := range res.certs {
		if c != res.signer {
			others = append(others, c)
		}
	}
	if err := certs.ValidateSMIME(res.signer, others, roots, now, certs.Sign); err != nil {
		kind := ErrUntrustedSigner
		if errors.Is(err, certs.ErrExpired) || errors.Is(err, certs.ErrNotYetValid) {
			kind = ErrExpiredSigner
		}
		return nil, openErr(kind, "the sender's signing "+err.Error(), err)
	}
	return res, nil
}

const reasonTampered = "the message was altered or damaged in transit: its content does not match its signature"

// verifySignerInfo checks one SignerInfo (RFC 5652 §5.3) and returns its
// certificate and signing time.
func verifySignerInfo(si *node, eType asn1.ObjectIdentifier, content []byte, pool []*x509.Certificate) (*x509.Certificate, time.Time, error) {
	var when time.Time
	malformed := openErr(ErrMalformed, "the signature is malformed (signer info)", nil)
	if si == nil || len(si.children) < 5 {
		return nil, when, malformed
	}
	cert := findCert(child(si, 1), pool)
	if cert == nil {
		return nil, when, openErr(ErrUntrustedSigner, "the signer's certificate is not included in the message", nil)
	}
	digAlg, ok := oidOf(child(child(si, 2), 0))
	if !ok {
		return nil, when, malformed
	}
	h, ok := hashForOID(digAlg)
	if !ok {
		return nil, when, openErr(ErrWeakAlgorithm, "the message is signed with "+algName(digAlg)+", which is refused; the sender must sign with SHA-256", nil)
	}
	i := 3
	var signedAttrs *node
	if n := child(si, 3); n != nil && n.is(classContext, 0) && n.constructed {
		signedAttrs, i = n, 4
	}
	sigAlg, ok := oidOf(child(child(si, i), 0))
	sigNode := child(si, i+1)
	if !ok || sigNode == nil || !sigNode.is(classUniversal, tagOctetString) {
		return nil, when, malformed
	}
	hh := h.New()
	hh.Write(content)
	sum := hh.Sum(nil)
	signedBytes := content
	if signedAttrs != nil {
		var digest []byte
		var ctype asn1.ObjectIdentifier
		for _, a := range signedAttrs.children {
			typ, ok := oidOf(child(a, 0))
			val := child(child(a, 1), 0)
			if !ok || val == nil {
				return nil, when, malformed
			}
			switch {
			case typ.Equal(oidAttrMessageDigest):
				digest = val.octets()
			case typ.Equal(oidAttrContentType):
				ctype, _ = oidOf(val)
			case typ.Equal(oidAttrSigningTime):
				asn1.Unmarshal(val.der(), &when)
			}
		}
		if digest == nil || !ctype.Equal(eType) {
			return nil, when, openErr(ErrTampered, "the signature lacks the message-digest or content-type attribute", nil)
		}
		if subtle.ConstantTimeCompare(digest, sum) != 1 {
			return nil, when, openErr(ErrTampered, reasonTampered, nil)
		}
		// RFC 5652 §5.4: the signature is over the DER SET OF, tag 0x31.
		der := signedAttrs.der()
		der[0] = 0x31
		signedBytes = der
	}
	alg, err := signatureAlgorithm(sigAlg, h)
	if err != nil {
		return nil, when, err
	}
	if err := cert.CheckSignature(alg, signedBytes, sigNode.octets()); err != nil {
		return nil, when, openErr(ErrTampered, reasonTampered, err)
	}
	return cert, when, nil
}

func signatureAlgorithm(oid asn1.ObjectIdentifier, h crypto.Hash) (x509.SignatureAlgorithm, error) {
	rsa := map[crypto.Hash]x509.SignatureAlgorithm{crypto.SHA256: x509.SHA256WithRSA, crypto.SHA384: x509.SHA384WithRSA, crypto.SHA512: x509.SHA512WithRSA}
	ec := map[crypto.Hash]x509.SignatureAlgorithm{crypto.SHA256: x509.ECDSAWithSHA256, crypto.SHA384: x509.ECDSAWithSHA384, crypto.SHA512: x509.ECDSAWithSHA512}
	switch {
	case oid.Equal(oidRSAEncryption), oid.Equal(oidRSASHA256), oid.Equal(oidRSASHA384), oid.Equal(oidRSASHA512):
		return rsa[h], nil
	case oid.Equal(oidECPublicKey), oid.Equal(oidECDSASHA256), oid.Equal(oidECDSASHA384), oid.Equal(oidECDSASHA512):
		return ec[h], nil
	}
	return 0, openErr(ErrWeakAlgorithm, fmt.Sprintf("the signature algorithm %s is not supported; the sender should sign with RSA or ECDSA and SHA-256", oid), nil)
}

// findCert finds the certificate a SignerIdentifier names: issuerAndSerial
// or [0] subjectKeyIdentifier (RFC 5652 §5.3).
func findCert(sid *node, pool []*x509.Certificate) *x509.Certificate {
	if sid == nil {
		return nil
	}
	if sid.is(classContext, 0) && !sid.constructed {
		for _, c := range pool {
			if len(c.SubjectKeyId) > 0 && bytes.Equal(c.SubjectKeyId, sid.content) {
				return c
			}
		}
		return nil
	}
	issuer, serialNode := child(sid, 0), child(sid, 1)
	if issuer == nil || serialNode == nil {
		return nil
	}
	var serial *big.Int
	if _, err := asn1.Unmarshal(serialNode.der(), &serial); err != nil {
		return nil
	}
	rawIssuer := issuer.der()
	for _, c := range pool {
		if bytes.Equal(c.RawIssuer, rawIssuer) && c.SerialNumber.Cmp(serial) == 0 {
			return c
		}
	}
	return nil
}
