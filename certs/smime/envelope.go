package smime

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"io"
	"math/big"

	"nhsrelay/certs"
)

// envelopeWriter writes CMS EnvelopedData (RFC 5652 §6) as it goes: the
// recipient infos first, then the content encrypted with AES-256-CBC
// (RFC 3565) in 64 KiB segments of a constructed, indefinite-length
// encryptedContent, as `openssl cms -stream` does. Memory use is one
// segment, whatever the message size.
type envelopeWriter struct {
	out io.Writer
	cbc cipher.BlockMode
	buf []byte // plaintext waiting to fill a segment
	err error
}

const segmentSize = 64 << 10 // a multiple of the AES block size

// newEnvelopeWriter writes the structure up to the encrypted content.
// legacy says, per recipient, whether to use RSA PKCS#1 v1.5 key transport
// instead of RSAES-OAEP with SHA-256.
func newEnvelopeWriter(out io.Writer, recipients []*x509.Certificate, legacy func(*x509.Certificate) bool) (*envelopeWriter, error) {
	if len(recipients) == 0 {
		return nil, fmt.Errorf("smime: seal: no recipient certificates")
	}
	key := make([]byte, 32)
	iv := make([]byte, aes.BlockSize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("smime: seal: content key: %w", err)
	}
	if _, err := rand.Read(iv); err != nil {
		return nil, fmt.Errorf("smime: seal: IV: %w", err)
	}
	var infos bytes.Buffer
	for _, rc := range recipients {
		ri, err := keyTransRecipientInfo(rc, key, legacy != nil && legacy(rc))
		if err != nil {
			return nil, err
		}
		infos.Write(ri)
	}
	ivDER, err := asn1.Marshal(iv)
	if err != nil {
		return nil, err
	}
	alg, err := asn1.Marshal(pkix.AlgorithmIdentifier{Algorithm: oidAES256CBC, Parameters: asn1.RawValue{FullBytes: ivDER}})
	if err != nil {
		return nil, err
	}
	var head bytes.Buffer
	head.Write([]byte{0x30, 0x80}) // ContentInfo
	head.Write(mustOID(oidEnvelopedData))
	head.Write([]byte{0xa0, 0x80}) // [0] EXPLICIT content
	head.Write([]byte{0x30, 0x80}) // EnvelopedData
	// RFC 5652 §6.1: version 0 when there is no originatorInfo, no
	// unprotectedAttrs and every RecipientInfo is a version 0 ktri.
	head.Write([]byte{0x02, 0x01, 0x00})
	writeTL(&head, classUniversal, tagSet, true, infos.Len())
	head.Write(infos.Bytes())
	head.Write([]byte{0x30, 0x80}) // EncryptedContentInfo
	head.Write(mustOID(oidData))
	head.Write(alg)
	head.Write([]byte{0xa0, 0x80}) // [0] IMPLICIT OCTET STRING, constructed
	if _, err := out.Write(head.Bytes()); err != nil {
		return nil, fmt.Errorf("smime: seal: write: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	clear(key)
	return &envelopeWriter{out: out, cbc: cipher.NewCBCEncrypter(block, iv), buf: make([]byte, 0, segmentSize)}, nil
}

func (e *envelopeWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n := len(p)
	for len(p) > 0 {
		k := copy(e.buf[len(e.buf):cap(e.buf)], p)
		e.buf = e.buf[:len(e.buf)+k]
		p = p[k:]
		if len(e.buf) == cap(e.buf) {
			if err := e.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (e *envelopeWriter) flush() error {
	e.cbc.CryptBlocks(e.buf, e.buf)
	var tl bytes.Buffer
	writeTL(&tl, classUniversal, tagOctetString, false, len(e.buf))
	if _, err := e.out.Write(tl.Bytes()); err != nil {
		e.err = fmt.Errorf("smime: seal: write: %w", err)
		return e.err
	}
	if _, err := e.out.Write(e.buf); err != nil {
		e.err = fmt.Errorf("smime: seal: write: %w", err)
		return e.err
	}
	e.buf = e.buf[:0]
	return nil
}

// Close pads (RFC 5652 §6.3, PKCS#7 padding), writes the last segment and
// closes every indefinite-length element.
func (e *envelopeWriter) Close() error {
	if e.err != nil {
		return e.err
	}
	pad := aes.BlockSize - len(e.buf)%aes.BlockSize
	for range pad {
		e.buf = append(e.buf, byte(pad))
	}
	if err := e.flush(); err != nil {
		return err
	}
	// End-of-contents for encryptedContent, EncryptedContentInfo,
	// EnvelopedData, [0] and ContentInfo (X.690 §8.1.5).
	if _, err := e.out.Write(make([]byte, 10)); err != nil {
		e.err = fmt.Errorf("smime: seal: write: %w", err)
	}
	return e.err
}

// keyTransRecipientInfo is RFC 5652 §6.2.1 KeyTransRecipientInfo, version 0
// (issuerAndSerialNumber), with RSAES-OAEP SHA-256/MGF1-SHA-256 (RFC 8551
// §2.3 SHOULD+, RFC 3560) or, when legacy, RSA PKCS#1 v1.5 (RFC 3370 §4.2.1).
func keyTransRecipientInfo(cert *x509.Certificate, key []byte, legacy bool) ([]byte, error) {
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("smime: seal: certificate for %s has a %T key; S/MIME encryption needs RSA", certs.Name(cert), cert.PublicKey)
	}
	if err := certs.CheckKey(pub); err != nil {
		return nil, fmt.Errorf("smime: seal: certificate for %s: %w", certs.Name(cert), err)
	}
	var alg pkix.AlgorithmIdentifier
	var ek []byte
	var err error
	if legacy {
		alg = pkix.AlgorithmIdentifier{Algorithm: oidRSAEncryption, Parameters: asn1.NullRawValue}
		//lint:ignore SA1019 only for endpoints an administrator lists in smime.legacy_key_transport (audited each time); RSA-OAEP otherwise
		ek, err = rsa.EncryptPKCS1v15(rand.Reader, pub, key)
	} else {
		alg, err = oaepSHA256()
		if err == nil {
			ek, err = rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, key, nil)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("smime: seal: encrypt key for %s: %w", certs.Name(cert), err)
	}
	return asn1.Marshal(struct {
		Version int
		RID     struct {
			Issuer asn1.RawValue
			Serial *big.Int
		}
		Alg pkix.AlgorithmIdentifier
		Key []byte
	}{
		RID: struct {
			Issuer asn1.RawValue
			Serial *big.Int
		}{asn1.RawValue{FullBytes: cert.RawIssuer}, cert.SerialNumber},
		Alg: alg, Key: ek,
	})
}

// oaepSHA256 is the AlgorithmIdentifier of RSAES-OAEP with SHA-256 and
// MGF1-SHA-256 (RFC 4055 §4.1, sha256Identifier with NULL parameters).
func oaepSHA256() (pkix.AlgorithmIdentifier, error) {
	sha := pkix.AlgorithmIdentifier{Algorithm: oidSHA256, Parameters: asn1.NullRawValue}
	shaDER, err := asn1.Marshal(sha)
	if err != nil {
		return pkix.AlgorithmIdentifier{}, err
	}
	params, err := asn1.Marshal(rsaOAEPParams{
		Hash: sha,
		MGF:  pkix.AlgorithmIdentifier{Algorithm: oidMGF1, Parameters: asn1.RawValue{FullBytes: shaDER}},
	})
	if err != nil {
		return pkix.AlgorithmIdentifier{}, err
	}
	return pkix.AlgorithmIdentifier{Algorithm: oidRSAOAEP, Parameters: asn1.RawValue{FullBytes: params}}, nil
}

func mustOID(oid asn1.ObjectIdentifier) []byte {
	b, err := asn1.Marshal(oid)
	if err != nil {
		panic(err) // only called with the constants above
	}
	return b
}
