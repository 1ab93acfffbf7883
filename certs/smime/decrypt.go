package smime

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha1" // RSAES-OAEP's default hash, accepted inbound (see oaepOptions)
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"io"
	"strings"

	"nhsrelay/certs"
)

// decryptEnvelope parses ContentInfo → EnvelopedData (RFC 5652 §6.1) or
// AuthEnvelopedData (RFC 5083 §2.1) from b and decrypts the content:
// AES-CBC streamed segment by segment, AES-GCM (RFC 5084) collected and
// then opened in place. Either way the plaintext is held once.
func decryptEnvelope(b *berReader, kps []certs.KeyPair, o *Opened, hint int64) ([]byte, error) {
	malformed := func(what string, err error) ([]byte, error) {
		return nil, openErr(ErrMalformed, "the encrypted message is malformed ("+what+")", err)
	}
	budget := int64(maxNodeSize)
	ciH, err := b.readHeader()
	if err != nil || !ciH.is(classUniversal, tagSequence) || !ciH.constructed {
		return malformed("no ContentInfo", err)
	}
	ci, err := b.enter(ciH)
	if err != nil {
		return malformed("ContentInfo", err)
	}
	typ, err := ci.readNodeBudget(&budget, 0)
	if err != nil {
		return malformed("content type", err)
	}
	oid, _ := oidOf(typ)
	var auth bool
	switch {
	case oid.Equal(oidSignedData):
		return nil, openErr(ErrNotEncrypted, "the message is signed but not encrypted; it travelled in clear", nil)
	case oid.Equal(oidAuthEnveloped):
		auth = true
	case !oid.Equal(oidEnvelopedData):
		return malformed("not enveloped-data", nil)
	}
	h0, err := ci.readHeader()
	if err != nil || !h0.is(classContext, 0) || !h0.constructed {
		return malformed("content", err)
	}
	c0, err := ci.enter(h0)
	if err != nil {
		return malformed("content", err)
	}
	edH, err := c0.readHeader()
	if err != nil || !edH.is(classUniversal, tagSequence) || !edH.constructed {
		return malformed("EnvelopedData", err)
	}
	ed, err := c0.enter(edH)
	if err != nil {
		return malformed("EnvelopedData", err)
	}
	if _, err := ed.readNodeBudget(&budget, 0); err != nil { // version
		return malformed("version", err)
	}
	infos, err := ed.readNodeBudget(&budget, 0)
	if err == nil && infos.is(classContext, 0) { // originatorInfo, not needed
		infos, err = ed.readNodeBudget(&budget, 0)
	}
	if err != nil || !infos.is(classUniversal, tagSet) {
		return malformed("recipient infos", err)
	}
	eciH, err := ed.readHeader()
	if err != nil || !eciH.is(classUniversal, tagSequence) || !eciH.constructed {
		return malformed("EncryptedContentInfo", err)
	}
	eci, err := ed.enter(eciH)
	if err != nil {
		return malformed("EncryptedContentInfo", err)
	}
	if _, err := eci.readNodeBudget(&budget, 0); err != nil {
		return malformed("content type", err)
	}
	algNode, err := eci.readNodeBudget(&budget, 0)
	if err != nil {
		return malformed("content algorithm", err)
	}
	alg, ok := oidOf(child(algNode, 0))
	if !ok {
		return malformed("content algorithm", nil)
	}
	keyLen, gcm := 0, false
	switch {
	case alg.Equal(oidAES128CBC):
		keyLen = 16
	case alg.Equal(oidAES192CBC):
		keyLen = 24
	case alg.Equal(oidAES256CBC):
		keyLen = 32
	case alg.Equal(oidAES128GCM):
		keyLen, gcm = 16, true
	case alg.Equal(oidAES192GCM):
		keyLen, gcm = 24, true
	case alg.Equal(oidAES256GCM):
		keyLen, gcm = 32, true
	case alg.Equal(oidDESCBC), alg.Equal(oidDESEDE3), alg.Equal(oidRC2CBC):
		return nil, openErr(ErrWeakAlgorithm, "the message is encrypted with "+algName(alg)+", which is refused as weak; the sender must use AES", nil)
	default:
		return nil, openErr(ErrCannotDecrypt, "the message is encrypted with an unsupported algorithm ("+algName(alg)+"); the sender should use AES-256-CBC or AES-256-GCM", nil)
	}
	if gcm != auth {
		// RFC 5083 §1: authenticated enveloping needs an authenticated
		// cipher; AES-GCM in plain EnvelopedData would lose its tag.
		return nil, openErr(ErrCannotDecrypt, "the message uses "+algName(alg)+" in the wrong kind of envelope; the sender should use AES-256-CBC enveloped-data or AES-GCM authenveloped-data", nil)
	}
	var aead cipher.AEAD
	var iv []byte
	if !gcm {
		ivNode := child(algNode, 1)
		if ivNode == nil || !ivNode.is(classUniversal, tagOctetString) || len(ivNode.octets()) != aes.BlockSize {
			return malformed("IV", nil)
		}
		iv = ivNode.octets()
	}
	key, err := recipientKey(infos, kps, keyLen, o)
	if err != nil {
		return nil, err
	}
	o.Algorithms = algName(alg) + ", " + o.Algorithms
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, openErr(ErrCannotDecrypt, "the message key has the wrong length", err)
	}
	if gcm {
		if aead, iv, err = gcmCipher(block, child(algNode, 1)); err != nil {
			return nil, err
		}
	}
	h, err := eci.readHeader()
	if err != nil || !h.is(classContext, 0) {
		return malformed("no encrypted content", err)
	}
	if !h.constructed {
		// A declared length is only believed up to what the input can hold.
		hint = min(hint, h.length)
	}
	content, err := newOctetStream(eci, h)
	if err != nil {
		return malformed("encrypted content", err)
	}
	if !gcm {
		return decryptCBC(content, cipher.NewCBCDecrypter(block, iv), hint)
	}
	return decryptGCM(content, aead, iv, hint, eci, eciH, ed, edH, &budget)
}

// gcmParameters is RFC 5084 §3.2 GCMParameters.
type gcmParameters struct {
	Nonce  []byte
	ICVLen int `asn1:"optional,default:12"`
}

func gcmCipher(block cipher.Block, params *node) (cipher.AEAD, []byte, error) {
	var p gcmParameters
	if params == nil {
		return nil, nil, openErr(ErrMalformed, "the encrypted message is malformed (GCM parameters)", nil)
	}
	if rest, err := asn1.Unmarshal(params.der(), &p); err != nil || len(rest) > 0 {
		return nil, nil, openErr(ErrMalformed, "the encrypted message is malformed (GCM parameters)", err)
	}
	var aead cipher.AEAD
	var err error
	switch {
	case len(p.Nonce) == 12 && p.ICVLen >= 12 && p.ICVLen <= 16: // RFC 5084 §3.2: 12-octet nonce recommended
		aead, err = cipher.NewGCMWithTagSize(block, p.ICVLen)
	case len(p.Nonce) >= 7 && len(p.Nonce) <= 13 && p.ICVLen == 16:
		aead, err = cipher.NewGCMWithNonceSize(block, len(p.Nonce))
	default:
		err = fmt.Errorf("nonce %d octets, tag %d octets", len(p.Nonce), p.ICVLen)
	}
	if err != nil {
		return nil, nil, openErr(ErrCannotDecrypt, "the message uses AES-GCM parameters this relay does not support; the sender should use a 12-octet nonce", err)
	}
	return aead, p.Nonce, nil
}

// decryptGCM reads the ciphertext into one buffer, then the rest of the
// AuthEnvelopedData (RFC 5083 §2.1: authAttrs, mac), and opens it in place.
// Nothing is returned unless the tag verifies.
func decryptGCM(content io.Reader, aead cipher.AEAD, nonce []byte, hint int64, eci *berReader, eciH header, ed *berReader, edH header, budget *int64) ([]byte, error) {
	malformed := func(what string, err error) ([]byte, error) {
		return nil, openErr(ErrMalformed, "the encrypted message is malformed ("+what+")", err)
	}
	var ct bytes.Buffer
	if hint > 0 && hint < 1<<31 {
		ct.Grow(int(hint) + aead.Overhead())
	}
	if _, err := ct.ReadFrom(content); err != nil {
		return malformed("encrypted content truncated", err)
	}
	if err := eci.leave(eciH); err != nil {
		return malformed("EncryptedContentInfo", err)
	}
	n, err := ed.next(edH, budget)
	if err != nil {
		return malformed("after the encrypted content", err)
	}
	var aad []byte
	if n != nil && n.is(classContext, 1) && n.constructed {
		// RFC 5083 §2.2: the AAD is the DER of authAttrs with the SET OF
		// tag in place of [1].
		aad = n.der()
		aad[0] = 0x31
		if n, err = ed.next(edH, budget); err != nil {
			return malformed("after the authenticated attributes", err)
		}
	}
	if n == nil || !n.is(classUniversal, tagOctetString) || n.constructed || len(n.content) != aead.Overhead() {
		return malformed("no message authentication code", nil)
	}
	sealed := append(ct.Bytes(), n.content...)
	plain, err := aead.Open(sealed[:0], nonce, sealed, aad)
	if err != nil {
		return nil, tampered(flaw("the AES-GCM tag does not match"))
	}
	return plain, nil
}

// decryptCBC decrypts the stream into one buffer and removes the padding
// (RFC 5652 §6.3). A bad padding gets the same error as a bad signature, so
// the two cannot be told apart (no padding oracle through DSNs).
func decryptCBC(r io.Reader, cbc cipher.BlockMode, hint int64) ([]byte, error) {
	var out bytes.Buffer
	if hint > 0 && hint < 1<<31 {
		out.Grow(int(hint) + aes.BlockSize)
	}
	buf := make([]byte, segmentSize)
	fill := 0
	for {
		n, err := r.Read(buf[fill:])
		fill += n
		whole := fill - fill%aes.BlockSize
		if whole > 0 {
			cbc.CryptBlocks(buf[:whole], buf[:whole])
			out.Write(buf[:whole])
			fill = copy(buf, buf[whole:fill])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, openErr(ErrMalformed, "the encrypted content is truncated or malformed", err)
		}
	}
	p := out.Bytes()
	if fill != 0 || len(p) == 0 {
		return nil, tampered(flaw("the ciphertext is not whole blocks"))
	}
	pad := int(p[len(p)-1])
	bad := pad == 0 || pad > aes.BlockSize
	for _, c := range p[len(p)-min(pad, aes.BlockSize):] {
		bad = bad || int(c) != pad
	}
	if bad {
		return nil, tampered(flaw("the CBC padding is wrong"))
	}
	return p[:len(p)-pad], nil
}

// recipientKey finds the KeyTransRecipientInfo for one of kps' certificates
// (RFC 5652 §6.2.1), the first pair first, and decrypts the content key
// with that pair's key.
func recipientKey(infos *node, kps []certs.KeyPair, keyLen int, o *Opened) ([]byte, error) {
	if len(kps) == 0 || kps[0].Cert == nil || kps[0].Key == nil {
		return nil, openErr(ErrCannotDecrypt, "no decryption key is configured for this endpoint", nil)
	}
	for _, kp := range kps {
		if kp.Cert == nil {
			continue
		}
		for _, ri := range infos.children {
			if ri.is(classUniversal, tagSequence) && matchesRID(child(ri, 1), kp.Cert) {
				o.Recipient = kp.Cert
				return decryptKey(ri, kp, keyLen, o)
			}
		}
	}
	kp := kps[0]
	which := fmt.Sprintf("%s, serial %x", certs.Name(kp.Cert), kp.Cert.SerialNumber)
	if len(kps) > 1 {
		which += fmt.Sprintf(", or any of %d older keys", len(kps)-1)
	}
	return nil, openErr(ErrCannotDecrypt, "the message is not encrypted to this endpoint's certificate ("+which+"); the sender may hold an old or wrong certificate", nil)
}

// decryptKey decrypts the content key in ri, a KeyTransRecipientInfo for
// kp's certificate.
func decryptKey(ri *node, kp certs.KeyPair, keyLen int, o *Opened) ([]byte, error) {
	priv, ok := kp.Key.(*rsa.PrivateKey)
	if !ok {
		return nil, openErr(ErrCannotDecrypt, "this endpoint's key is not RSA, so it cannot receive S/MIME mail", nil)
	}
	alg, ok := oidOf(child(child(ri, 2), 0))
	ekNode := child(ri, 3)
	if !ok || ekNode == nil || !ekNode.is(classUniversal, tagOctetString) {
		return nil, openErr(ErrMalformed, "the encrypted message is malformed (recipient info)", nil)
	}
	ek := ekNode.octets()
	switch {
	case alg.Equal(oidRSAEncryption):
		// RFC 3218 §2.3.2: on bad padding carry on with a random key, so
		// the failure shows up only as a bad content (ErrTampered).
		key := make([]byte, keyLen)
		rand.Read(key)
		//lint:ignore SA1019 inbound PKCS#1 v1.5 key transport is what openssl cms and many mail clients send by default; implicit rejection above is the mitigation (RFC 3218)
		if err := rsa.DecryptPKCS1v15SessionKey(nil, priv, ek, key); err != nil {
			return nil, openErr(ErrCannotDecrypt, "the message key cannot be decrypted with this endpoint's key", err)
		}
		o.Algorithms, o.LegacyKeyTransport = "RSA-PKCS1-v1_5", true
		return key, nil
	case alg.Equal(oidRSAOAEP):
		opts, name, err := oaepOptions(child(child(ri, 2), 1))
		if err != nil {
			return nil, err
		}
		key, err := priv.Decrypt(nil, ek, opts)
		if err != nil || len(key) != keyLen {
			return nil, openErr(ErrCannotDecrypt, "the message key cannot be decrypted with this endpoint's key; the certificate and key may not match, or the sender used an old certificate", err)
		}
		o.Algorithms = name
		return key, nil
	default:
		return nil, openErr(ErrCannotDecrypt, "the message key is encrypted with an unsupported algorithm ("+alg.String()+")", nil)
	}
}

func matchesRID(rid *node, cert *x509.Certificate) bool {
	if rid == nil {
		return false
	}
	if rid.is(classContext, 0) && !rid.constructed {
		return len(cert.SubjectKeyId) > 0 && bytes.Equal(rid.content, cert.SubjectKeyId)
	}
	return findCert(rid, []*x509.Certificate{cert}) != nil
}

// oaepOptions reads RSAES-OAEP-params (RFC 8017 A.2.1; absent means SHA-1
// and MGF1-SHA-1, RFC 4055 §4.1).
func oaepOptions(params *node) (*rsa.OAEPOptions, string, error) {
	opts := &rsa.OAEPOptions{Hash: crypto.SHA1, MGFHash: crypto.SHA1}
	if params == nil || (params.is(classUniversal, 5) && !params.constructed) {
		return opts, "RSAES-OAEP-SHA1", nil
	}
	var p rsaOAEPParams
	if _, err := asn1.Unmarshal(params.der(), &p); err != nil {
		return nil, "", openErr(ErrMalformed, "the encrypted message is malformed (OAEP parameters)", err)
	}
	bad := openErr(ErrCannotDecrypt, "the message key uses unsupported RSAES-OAEP parameters", nil)
	if len(p.Hash.Algorithm) > 0 {
		h, ok := hashForOID(p.Hash.Algorithm)
		if !ok && !p.Hash.Algorithm.Equal(oidSHA1) {
			return nil, "", bad
		}
		if ok {
			opts.Hash = h
		}
	}
	if len(p.MGF.Algorithm) > 0 {
		var mgfHash pkix.AlgorithmIdentifier
		if !p.MGF.Algorithm.Equal(oidMGF1) {
			return nil, "", bad
		}
		if _, err := asn1.Unmarshal(p.MGF.Parameters.FullBytes, &mgfHash); err != nil {
			return nil, "", bad
		}
		h, ok := hashForOID(mgfHash.Algorithm)
		if !ok && !mgfHash.Algorithm.Equal(oidSHA1) {
			return nil, "", bad
		}
		if ok {
			opts.MGFHash = h
		}
	}
	if len(p.PSourceFunc.Algorithm) > 0 {
		if !p.PSourceFunc.Algorithm.Equal(oidPSpecified) {
			return nil, "", bad
		}
		// RFC 8017 A.2.1: pSpecified's parameter is the label, an OCTET
		// STRING; one that does not parse is a malformed key transport,
		// not an empty label.
		if rest, err := asn1.Unmarshal(p.PSourceFunc.Parameters.FullBytes, &opts.Label); err != nil || len(rest) > 0 {
			return nil, "", openErr(ErrMalformed, "the encrypted message is malformed (OAEP label)", err)
		}
	}
	return opts, "RSAES-OAEP-" + strings.ReplaceAll(opts.Hash.String(), "-", ""), nil
}
