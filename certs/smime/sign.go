package smime

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"slices"
	"time"
)

// detachedSignature returns a DER ContentInfo holding a SignedData (RFC 5652
// §5) over content whose SHA-256 digest is digest, without the content
// (RFC 8551 §3.5.3, the application/pkcs7-signature part of multipart/signed).
// Signed attributes: contentType, signingTime, messageDigest and
// sMIMECapabilities (RFC 8551 §2.5).
func detachedSignature(s Signer, digest []byte, now time.Time) ([]byte, error) {
	var sigAlg pkix.AlgorithmIdentifier
	switch s.Key.Public().(type) {
	case *rsa.PublicKey:
		// RFC 3370 §3.2: rsaEncryption with NULL parameters, what every
		// mail client verifies; the digest algorithm says SHA-256.
		sigAlg = pkix.AlgorithmIdentifier{Algorithm: oidRSAEncryption, Parameters: asn1.NullRawValue}
	case *ecdsa.PublicKey:
		sigAlg = pkix.AlgorithmIdentifier{Algorithm: oidECDSASHA256} // RFC 5754 §3.3: parameters absent
	default:
		return nil, fmt.Errorf("smime: sign: unsupported key type %T", s.Key.Public())
	}
	caps, err := asn1.Marshal([]pkix.AlgorithmIdentifier{
		{Algorithm: oidAES256CBC}, {Algorithm: oidAES128CBC}, {Algorithm: oidRSAOAEP},
	})
	if err != nil {
		return nil, err
	}
	attrs := [][]byte{
		attribute(oidAttrContentType, mustOID(oidData)),
		attribute(oidAttrSigningTime, mustMarshal(now.UTC().Truncate(time.Second))),
		attribute(oidAttrMessageDigest, mustMarshal(digest)),
		attribute(oidAttrSMIMECaps, caps),
	}
	// X.690 §11.6: the components of a DER SET OF are in ascending order.
	slices.SortFunc(attrs, bytes.Compare)
	signedAttrs := tlv(0x31, attrs...)

	// RFC 5652 §5.4: the signature covers the DER of the SET OF, tag 0x31.
	h := crypto.SHA256.New()
	h.Write(signedAttrs)
	sig, err := s.Key.Sign(rand.Reader, h.Sum(nil), crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("smime: sign: %w", err)
	}
	ias, err := asn1.Marshal(struct {
		Issuer asn1.RawValue
		Serial *big.Int
	}{asn1.RawValue{FullBytes: s.Cert.RawIssuer}, s.Cert.SerialNumber})
	if err != nil {
		return nil, err
	}
	sha256ID := mustMarshal(pkix.AlgorithmIdentifier{Algorithm: oidSHA256}) // RFC 5754 §2: parameters absent
	signerInfo := tlv(0x30,
		[]byte{0x02, 0x01, 0x01}, // version 1: issuerAndSerialNumber
		ias,
		sha256ID,
		append([]byte{0xa0}, signedAttrs[1:]...), // [0] IMPLICIT
		mustMarshal(sigAlg),
		mustMarshal(sig),
	)
	certList := [][]byte{s.Cert.Raw}
	for _, c := range s.Chain {
		certList = append(certList, c.Raw)
	}
	signedData := tlv(0x30,
		[]byte{0x02, 0x01, 0x01},    // version 1 (RFC 5652 §5.1)
		tlv(0x31, sha256ID),         // digestAlgorithms
		tlv(0x30, mustOID(oidData)), // encapContentInfo without eContent: detached
		tlv(0xa0, certList...),      // [0] IMPLICIT CertificateSet
		tlv(0x31, signerInfo),
	)
	return tlv(0x30, mustOID(oidSignedData), tlv(0xa0, signedData)), nil
}

func attribute(oid asn1.ObjectIdentifier, value []byte) []byte {
	return tlv(0x30, mustOID(oid), tlv(0x31, value))
}

// tlv encodes one DER element with a single-byte identifier.
func tlv(id byte, contents ...[]byte) []byte {
	n := 0
	for _, c := range contents {
		n += len(c)
	}
	var b bytes.Buffer
	b.Grow(n + 6)
	b.WriteByte(id)
	writeLength(&b, n)
	for _, c := range contents {
		b.Write(c)
	}
	return b.Bytes()
}

func mustMarshal(v any) []byte {
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("smime: marshal %T: %v", v, err)) // only fixed types reach here
	}
	return b
}
