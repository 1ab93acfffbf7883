package smime

import (
	"bytes"
	"crypto"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"math/big"
	"time"
)

// Verification of decrypted content happens in two stages, and the line
// between them is the EFAIL defence (CVE-2017-17689). Until a signature
// verifies, the content is whatever the (malleable) ciphertext decrypted
// to: every failure there — not signed, malformed MIME or CMS, unknown
// algorithm, digest or signature mismatch — is one ErrTampered with one
// fixed reason, and nothing taken from the content goes into an error, so
// neither the text nor the kind of a DSN tells an attacker anything about
// the plaintext. Only once a signature verifies do errors name things
// found in the content (the signer's certificate, a weak digest).

// flaw says which check failed on decrypted content, for the operator's
// log (OpenError.Detail). Every flaw is a constant phrase in this package,
// never built from message bytes.
type flaw string

func (f flaw) Error() string { return string(f) }

const (
	flawDigest    flaw = "the content does not match the message-digest attribute"
	flawSignature flaw = "the signature does not verify"
	flawStructure flaw = "the signature structure does not parse"
)

// tampered is the one error for any failure before a signature verifies.
func tampered(f flaw) *OpenError {
	return &OpenError{Kind: ErrTampered, Reason: reasonTampered, Detail: string(f)}
}

const reasonTampered = "the message was altered or damaged in transit, or was not signed: no signature matches its content, so its origin cannot be verified"

// maxSigners bounds how many SignerInfos are tried.
const maxSigners = 8

// signedData is a SignedData (RFC 5652 §5.1) with its content in hand.
type signedData struct {
	eType   asn1.ObjectIdentifier
	content []byte
	certs   []*x509.Certificate // every certificate the message carried
	infos   []*node             // SignerInfos
	sums    map[crypto.Hash][]byte
}

// signedResult is what a verified SignedData yields.
type signedResult struct {
	content     []byte
	signer      *x509.Certificate
	certs       []*x509.Certificate
	signingTime time.Time
	weak        string // a refused algorithm the signature used ("SHA-1"), found only after it verified
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

// parseSignedInfo reads a ContentInfo holding SignedData whose content is
// detached (multipart/signed, RFC 8551 §3.5.3): the content is passed in,
// and an eContent, if any, is ignored.
func parseSignedInfo(ci *node, detached []byte) (*signedData, error) {
	if oid, ok := oidOf(child(ci, 0)); !ok || !oid.Equal(oidSignedData) {
		return nil, flaw("the signature is not CMS signed-data")
	}
	sd := child(child(ci, 1), 0)
	if sd == nil || !sd.is(classUniversal, tagSequence) || len(sd.children) < 4 {
		return nil, flaw("no SignedData")
	}
	eType, ok := oidOf(child(child(sd, 2), 0))
	if !ok {
		return nil, flaw("no encapsulated content type")
	}
	return newSignedData(eType, detached, sd.children[3:])
}

// newSignedData gathers the certificates and SignerInfos that follow
// encapContentInfo in a SignedData.
func newSignedData(eType asn1.ObjectIdentifier, content []byte, rest []*node) (*signedData, error) {
	s := &signedData{eType: eType, content: content, sums: map[crypto.Hash][]byte{}}
	for _, c := range rest {
		switch {
		case c.is(classContext, 0) && c.constructed:
			for _, raw := range c.children {
				if !raw.is(classUniversal, tagSequence) {
					continue // attribute certificates and others: not used
				}
				cert, err := x509.ParseCertificate(raw.der())
				if err != nil {
					return nil, flaw("a certificate in the signature does not parse")
				}
				s.certs = append(s.certs, cert)
			}
		case c.is(classUniversal, tagSet):
			s.infos = c.children
		}
	}
	if len(s.infos) == 0 {
		return nil, flaw("no SignerInfo")
	}
	if len(s.infos) > maxSigners {
		return nil, flaw("too many SignerInfos")
	}
	return s, nil
}

func (s *signedData) sum(h crypto.Hash) []byte {
	if v, ok := s.sums[h]; ok {
		return v
	}
	hh := h.New()
	hh.Write(s.content)
	s.sums[h] = hh.Sum(nil)
	return s.sums[h]
}

// verify checks the SignerInfos until one verifies (RFC 5652 §5.6). It
// returns only flaws: the signer's certificate is validated by the caller.
func (s *signedData) verify() (*signedResult, error) {
	var first error
	for _, si := range s.infos {
		signer, when, weak, err := s.verifySignerInfo(si)
		if err == nil {
			return &signedResult{content: s.content, signer: signer, certs: s.certs, signingTime: when, weak: weak}, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

// verifySignerInfo checks one SignerInfo (RFC 5652 §5.3): the digest over
// the content, the signed attributes, and the signature, with a signature
// algorithm consistent with the digest algorithm. SHA-1 is verified like
// the others and reported in weak, so that refusing it is not an oracle.
func (s *signedData) verifySignerInfo(si *node) (cert *x509.Certificate, when time.Time, weak string, err error) {
	if si == nil || !si.is(classUniversal, tagSequence) || len(si.children) < 5 {
		return nil, when, "", flaw("a SignerInfo is malformed")
	}
	cert = findCert(child(si, 1), s.certs)
	if cert == nil {
		return nil, when, "", flaw("the signer's certificate is not in the message")
	}
	digAlg, ok := oidOf(child(child(si, 2), 0))
	if !ok {
		return nil, when, "", flaw("a SignerInfo has no digest algorithm")
	}
	h, ok := hashForOID(digAlg)
	if !ok && digAlg.Equal(oidSHA1) {
		h, ok, weak = crypto.SHA1, true, algName(digAlg)
	}
	if !ok {
		return nil, when, "", flaw("the digest algorithm is not supported")
	}
	i := 3
	var signedAttrs *node
	if n := child(si, 3); n != nil && n.is(classContext, 0) && n.constructed {
		signedAttrs, i = n, 4
	}
	sigAlgNode, sigNode := child(si, i), child(si, i+1)
	sigOID, ok := oidOf(child(sigAlgNode, 0))
	if !ok || sigNode == nil || !sigNode.is(classUniversal, tagOctetString) {
		return nil, when, "", flaw("a SignerInfo has no signature")
	}
	alg, err := signatureAlgorithm(sigOID, h)
	if err != nil {
		return nil, when, "", err
	}
	signed := s.content
	if signedAttrs == nil {
		// RFC 5652 §5.3: signedAttrs MUST be present when the content type
		// is not id-data, or the content type itself would be unsigned.
		if !s.eType.Equal(oidData) {
			return nil, when, "", flaw("signed attributes are missing for content that is not id-data")
		}
	} else {
		if when, err = s.checkAttributes(signedAttrs, h); err != nil {
			return nil, when, "", err
		}
		// RFC 5652 §5.4: the signature is over the DER SET OF, tag 0x31.
		signed = signedAttrs.der()
		signed[0] = 0x31
	}
	if err := cert.CheckSignature(alg, signed, sigNode.octets()); err != nil {
		return nil, when, "", flawSignature
	}
	return cert, when, weak, nil
}

// checkAttributes checks the signed attributes: exactly one content-type
// attribute equal to eContentType and one message-digest attribute equal
// to the content's digest (RFC 5652 §11.1, §11.2: one instance, one
// value each), at most one signing-time (§11.3), which it returns.
func (s *signedData) checkAttributes(attrs *node, h crypto.Hash) (time.Time, error) {
	var when time.Time
	var digest []byte
	var ctype asn1.ObjectIdentifier
	seen := map[string]bool{}
	for _, a := range attrs.children {
		typ, ok := oidOf(child(a, 0))
		vals := child(a, 1)
		if !ok || vals == nil || !vals.is(classUniversal, tagSet) || len(vals.children) == 0 {
			return when, flaw("a signed attribute is malformed")
		}
		single := typ.Equal(oidAttrMessageDigest) || typ.Equal(oidAttrContentType) || typ.Equal(oidAttrSigningTime)
		if single && (seen[typ.String()] || len(vals.children) != 1) {
			return when, flaw("a signed attribute that must be single is repeated")
		}
		seen[typ.String()] = true
		val := vals.children[0]
		switch {
		case typ.Equal(oidAttrMessageDigest):
			if !val.is(classUniversal, tagOctetString) {
				return when, flaw("the message-digest attribute is malformed")
			}
			digest = val.octets()
		case typ.Equal(oidAttrContentType):
			ctype, _ = oidOf(val)
		case typ.Equal(oidAttrSigningTime):
			asn1.Unmarshal(val.der(), &when)
		}
	}
	if digest == nil || ctype == nil || !ctype.Equal(s.eType) {
		return when, flaw("the message-digest or content-type attribute is missing or wrong")
	}
	if subtle.ConstantTimeCompare(digest, s.sum(h)) != 1 {
		return when, flawDigest
	}
	return when, nil
}

// signatureAlgorithm maps a SignerInfo's signatureAlgorithm to what x509
// verifies, given the digest algorithm. rsaEncryption and id-ecPublicKey
// take the digest algorithm's hash (RFC 3370 §3.2, RFC 5754 §3); an OID
// that names a hash (sha384WithRSAEncryption) must name the same one, or
// a signer could pass one digest off as another.
func signatureAlgorithm(oid asn1.ObjectIdentifier, h crypto.Hash) (x509.SignatureAlgorithm, error) {
	type pair struct {
		ec   bool
		hash crypto.Hash // 0: from the digest algorithm
	}
	var p pair
	switch {
	case oid.Equal(oidRSAEncryption):
	case oid.Equal(oidRSASHA1):
		p.hash = crypto.SHA1
	case oid.Equal(oidRSASHA256):
		p.hash = crypto.SHA256
	case oid.Equal(oidRSASHA384):
		p.hash = crypto.SHA384
	case oid.Equal(oidRSASHA512):
		p.hash = crypto.SHA512
	case oid.Equal(oidECPublicKey):
		p.ec = true
	case oid.Equal(oidECDSASHA1):
		p = pair{true, crypto.SHA1}
	case oid.Equal(oidECDSASHA256):
		p = pair{true, crypto.SHA256}
	case oid.Equal(oidECDSASHA384):
		p = pair{true, crypto.SHA384}
	case oid.Equal(oidECDSASHA512):
		p = pair{true, crypto.SHA512}
	default:
		return 0, flaw("the signature algorithm is not supported")
	}
	if p.hash != 0 && p.hash != h {
		return 0, flaw("the signature algorithm names a different hash from the digest algorithm")
	}
	rsa := map[crypto.Hash]x509.SignatureAlgorithm{crypto.SHA1: x509.SHA1WithRSA, crypto.SHA256: x509.SHA256WithRSA, crypto.SHA384: x509.SHA384WithRSA, crypto.SHA512: x509.SHA512WithRSA}
	ec := map[crypto.Hash]x509.SignatureAlgorithm{crypto.SHA1: x509.ECDSAWithSHA1, crypto.SHA256: x509.ECDSAWithSHA256, crypto.SHA384: x509.ECDSAWithSHA384, crypto.SHA512: x509.ECDSAWithSHA512}
	if p.ec {
		return ec[h], nil
	}
	return rsa[h], nil
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
