package smime

import (
	"crypto"
	"crypto/x509/pkix"
	"encoding/asn1"
)

// Object identifiers, with where each is defined.
var (
	oidData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}         // RFC 5652 §4
	oidSignedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}         // RFC 5652 §5.1
	oidEnvelopedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3}         // RFC 5652 §6.1
	oidAuthEnveloped = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 23} // RFC 5083 §2.1

	oidAttrContentType   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}  // RFC 5652 §11.1
	oidAttrMessageDigest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}  // RFC 5652 §11.2
	oidAttrSigningTime   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}  // RFC 5652 §11.3
	oidAttrSMIMECaps     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 15} // RFC 8551 §2.5.2

	oidSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1} // RFC 5754 §2.2
	oidSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}

	oidRSAEncryption = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}  // RFC 3370 §3.2 (signature) and §4.2.1 (key transport)
	oidRSASHA256     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11} // RFC 5754 §3.2
	oidRSASHA384     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidRSASHA512     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidRSAOAEP       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7} // RFC 3560 §2.2, RFC 8017 A.2.1
	oidMGF1          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidPSpecified    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 9}
	oidRSASHA1       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	oidECDSASHA1     = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}
	oidECDSASHA256   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2} // RFC 5754 §3.3
	oidECDSASHA384   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSASHA512   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidECPublicKey   = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}

	oidAES128CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2} // RFC 3565 §4.1
	oidAES192CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidAES128GCM = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 6} // RFC 5084 §3.2
	oidAES192GCM = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 26}
	oidAES256GCM = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 46}

	// Refused, named so the error can say what the sender used.
	oidDESCBC  = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 7}
	oidDESEDE3 = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}
	oidRC2CBC  = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 2}
)

func hashForOID(oid asn1.ObjectIdentifier) (crypto.Hash, bool) {
	switch {
	case oid.Equal(oidSHA256):
		return crypto.SHA256, true
	case oid.Equal(oidSHA384):
		return crypto.SHA384, true
	case oid.Equal(oidSHA512):
		return crypto.SHA512, true
	}
	return 0, false
}

// algName names an algorithm OID for error messages.
func algName(oid asn1.ObjectIdentifier) string {
	switch {
	case oid.Equal(oidDESCBC):
		return "DES"
	case oid.Equal(oidDESEDE3):
		return "3DES"
	case oid.Equal(oidRC2CBC):
		return "RC2"
	case oid.Equal(oidSHA1):
		return "SHA-1"
	case oid.Equal(oidAES128GCM):
		return "AES-128-GCM"
	case oid.Equal(oidAES192GCM):
		return "AES-192-GCM"
	case oid.Equal(oidAES256GCM):
		return "AES-256-GCM"
	case oid.Equal(oidAES128CBC):
		return "AES-128-CBC"
	case oid.Equal(oidAES192CBC):
		return "AES-192-CBC"
	case oid.Equal(oidAES256CBC):
		return "AES-256-CBC"
	}
	return oid.String()
}

// rsaOAEPParams is RFC 8017 A.2.1 RSAES-OAEP-params; absent fields mean
// SHA-1 (RFC 4055 §4.1).
type rsaOAEPParams struct {
	Hash        pkix.AlgorithmIdentifier `asn1:"optional,explicit,tag:0"`
	MGF         pkix.AlgorithmIdentifier `asn1:"optional,explicit,tag:1"`
	PSourceFunc pkix.AlgorithmIdentifier `asn1:"optional,explicit,tag:2"`
}
