package smime

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha1" // RSAES-OAEP's default hash, accepted inbound (see keyTransport)
	_ "crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"

	"mime"
	"net/textproto"
	"os"
	"strings"
	"time"

	"nhsrelay/certs"
)

// Opened is a decrypted, verified message.
type Opened struct {
	// Message is the original RFC 5322 message: the message/rfc822 part
	// when the sender wrapped it (as Seal does), else the signed entity.
	Message []byte
	Signer  *x509.Certificate   // verified, chains to the trust anchors
	Chain   []*x509.Certificate // the other certificates the signature carried
	// SigningTime is the signer's claimed signingTime attribute (zero if
	// absent); it is not trusted for validity, which is checked at now.
	SigningTime time.Time
	// Algorithms names what protected the message, for the trace header:
	// "AES-256-CBC, RSAES-OAEP-SHA256".
	Algorithms string
	// LegacyKeyTransport is true if the key came by RSA PKCS#1 v1.5;
	// accepted, but worth an audit note.
	LegacyKeyTransport bool
}

// SignerAddresses returns the signer's rfc822Name addresses, lower-cased.
// Checking that one belongs to the From address's organisation is the
// caller's job.
func (o *Opened) SignerAddresses() []string { return certs.Addresses(o.Signer) }

// SignerODSCode returns the ODS code of an organisation signing
// certificate (see certs.ODSCode).
func (o *Opened) SignerODSCode() (string, bool) { return certs.ODSCode(o.Signer) }

const maxHeaderBytes = 256 << 10

// Open reads an S/MIME message from r, decrypts it with recipient's key,
// and verifies its signature and the signer's chain to roots (the S/MIME
// trust anchors) at now. Accepted: enveloped-data with AES-128/192/256-CBC
// and RSA key transport (RSAES-OAEP with SHA-256, SHA-384, SHA-512 or the
// RFC 4055 default SHA-1 — OAEP needs no collision resistance — and
// PKCS#1 v1.5 decrypted in constant time, RFC 3218 §2.3.2), holding either
// multipart/signed or opaque signed-data with SHA-256/384/512 digests.
// DES, 3DES, RC2 and SHA-1 digests are refused. Every failure is an
// *OpenError wrapping one of the package's sentinels.
//
// The ciphertext is streamed; the plaintext is held once, since nothing
// may be released before its signature is checked.
func Open(r io.Reader, recipient certs.KeyPair, roots *x509.CertPool, now time.Time) (*Opened, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	hdr, err := readHeader(br)
	if err != nil {
		return nil, openErr(ErrMalformed, "the message header cannot be parsed", err)
	}
	ct, params, _ := mime.ParseMediaType(hdr.Get("Content-Type"))
	smimeType := strings.ToLower(params["smime-type"])
	switch {
	case ct != "application/pkcs7-mime" && ct != "application/x-pkcs7-mime":
		return nil, openErr(ErrNotEncrypted, fmt.Sprintf("the message is not S/MIME encrypted (it is %s); it may have been sent in clear", orNone(ct)), nil)
	case smimeType == "authenveloped-data":
		return nil, openErr(ErrCannotDecrypt, "the message uses AES-GCM authenticated enveloping, which this relay does not accept; the sender should use AES-256-CBC", nil)
	case smimeType != "" && smimeType != "enveloped-data":
		return nil, openErr(ErrNotEncrypted, "the message is S/MIME "+smimeType+", not encrypted; it may have been sent in clear", nil)
	}
	body := decodeBody(br, hdr.Get("Content-Transfer-Encoding"))
	b := newBERReader(body)
	o := &Opened{}
	plain, err := decryptEnvelope(b, recipient, o, sizeHint(r))
	if err != nil {
		return nil, err
	}
	if err := verifyEntity(plain, roots, now, o); err != nil {
		var oe *OpenError
		if errors.As(err, &oe) && oe.Kind == ErrMalformed {
			// CBC is malleable: garbled plaintext is reported exactly as a
			// bad signature, so error replies cannot serve as a format
			// oracle (EFAIL, CVE-2017-17689).
			return nil, openErr(ErrTampered, reasonTampered, err)
		}
		return nil, err
	}
	return o, nil
}

// sizeHint estimates the plaintext size from the input, so the one
// plaintext buffer is allocated once instead of doubling its way there
// (which would briefly hold two copies). base64 is 3/4 of its text.
func sizeHint(r io.Reader) int64 {
	var n int64
	switch v := r.(type) {
	case interface{ Len() int }:
		n = int64(v.Len())
	case interface{ Stat() (os.FileInfo, error) }:
		fi, err := v.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return 0
		}
		n = fi.Size()
		if s, ok := r.(io.Seeker); ok {
			if pos, err := s.Seek(0, io.SeekCurrent); err == nil {
				n -= pos
			}
		}
	}
	return n * 3 / 4
}

func orNone(s string) string {
	if s == "" {
		return "without a content type"
	}
	return s
}

// readHeader reads an RFC 5322 header block of at most maxHeaderBytes.
func readHeader(br *bufio.Reader) (textproto.MIMEHeader, error) {
	var raw bytes.Buffer
	for {
		line, err := br.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			if err == io.EOF && raw.Len()+len(line) > 0 {
				raw.Write(line)
				raw.WriteString("\r\n")
				break
			}
			return nil, err
		}
		raw.Write(line)
		if raw.Len() > maxHeaderBytes {
			return nil, errors.New("header too long")
		}
		if err == nil && (len(line) == 1 || (len(line) == 2 && line[0] == '\r')) {
			break
		}
	}
	return textproto.NewReader(bufio.NewReader(&raw)).ReadMIMEHeader()
}

func decodeBody(r io.Reader, cte string) io.Reader {
	if strings.EqualFold(strings.TrimSpace(cte), "base64") {
		return base64.NewDecoder(base64.StdEncoding, &spaceStripper{r: r})
	}
	return r
}

// spaceStripper drops spaces and tabs, which RFC 2045 §6.8 says decoders
// ignore; encoding/base64 already ignores CR and LF.
type spaceStripper struct{ r io.Reader }

func (s *spaceStripper) Read(p []byte) (int, error) {
	for {
		n, err := s.r.Read(p)
		j := 0
		for _, c := range p[:n] {
			if c != ' ' && c != '\t' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

// decryptEnvelope parses ContentInfo → EnvelopedData (RFC 5652 §6.1) from
// b, streaming the encrypted content through AES-CBC.
func decryptEnvelope(b *berReader, kp certs.KeyPair, o *Opened, hint int64) ([]byte, error) {
	malformed := func(what string, err error) ([]byte, error) {
		return nil, openErr(ErrMalformed, "the encrypted message is malformed ("+what+")", err)
	}
	if h, err := b.readHeader(); err != nil || !h.is(classUniversal, tagSequence) || !h.constructed {
		return malformed("no ContentInfo", err)
	}
	typ, err := b.readNode()
	if err != nil {
		return malformed("content type", err)
	}
	oid, _ := oidOf(typ)
	switch {
	case oid.Equal(oidSignedData):
		return nil, openErr(ErrNotEncrypted, "the message is signed but not encrypted; it travelled in clear", nil)
	case oid.Equal(oidAuthEnveloped):
		return nil, openErr(ErrCannotDecrypt, "the message uses AES-GCM authenticated enveloping, which this relay does not accept; the sender should use AES-256-CBC", nil)
	case !oid.Equal(oidEnvelopedData):
		return malformed("not enveloped-data", nil)
	}
	if h, err := b.readHeader(); err != nil || !h.is(classContext, 0) || !h.constructed {
		return malformed("content", err)
	}
	if h, err := b.readHeader(); err != nil || !h.is(classUniversal, tagSequence) || !h.constructed {
		return malformed("EnvelopedData", err)
	}
	if _, err := b.readNode(); err != nil { // version
		return malformed("version", err)
	}
	infos, err := b.readNode()
	if err == nil && infos.is(classContext, 0) { // originatorInfo, not needed
		infos, err = b.readNode()
	}
	if err != nil || !infos.is(classUniversal, tagSet) {
		return malformed("recipient infos", err)
	}
	if h, err := b.readHeader(); err != nil || !h.is(classUniversal, tagSequence) || !h.constructed {
		return malformed("EncryptedContentInfo", err)
	}
	if _, err := b.readNode(); err != nil {
		return malformed("content type", err)
	}
	algNode, err := b.readNode()
	if err != nil {
		return malformed("content algorithm", err)
	}
	alg, ok := oidOf(child(algNode, 0))
	if !ok {
		return malformed("content algorithm", nil)
	}
	var keyLen int
	switch {
	case alg.Equal(oidAES128CBC):
		keyLen = 16
	case alg.Equal(oidAES192CBC):
		keyLen = 24
	case alg.Equal(oidAES256CBC):
		keyLen = 32
	case alg.Equal(oidDESCBC), alg.Equal(oidDESEDE3), alg.Equal(oidRC2CBC):
		return nil, openErr(ErrWeakAlgorithm, "the message is encrypted with "+algName(alg)+", which is refused as weak; the sender must use AES", nil)
	default:
		return nil, openErr(ErrCannotDecrypt, "the message is encrypted with an unsupported algorithm ("+algName(alg)+"); the sender should use AES-256-CBC", nil)
	}
	ivNode := child(algNode, 1)
	if ivNode == nil || !ivNode.is(classUniversal, tagOctetString) || len(ivNode.octets()) != aes.BlockSize {
		return malformed("IV", nil)
	}
	key, err := recipientKey(infos, kp, keyLen, o)
	if err != nil {
		return nil, err
	}
	o.Algorithms = algName(alg) + ", " + o.Algorithms
	h, err := b.readHeader()
	if err != nil || !h.is(classContext, 0) {
		return malformed("no encrypted content", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, openErr(ErrCannotDecrypt, "the message key has the wrong length", err)
	}
	if !h.constructed {
		// A declared length is only believed up to what the input can hold.
		hint = min(hint, h.length)
	}
	plain, err := decryptCBC(newOctetStream(b, h), cipher.NewCBCDecrypter(block, ivNode.octets()), hint)
	if err != nil {
		return nil, err
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
		return nil, openErr(ErrTampered, reasonTampered, nil)
	}
	pad := int(p[len(p)-1])
	if pad == 0 || pad > aes.BlockSize {
		return nil, openErr(ErrTampered, reasonTampered, nil)
	}
	for _, c := range p[len(p)-pad:] {
		if int(c) != pad {
			return nil, openErr(ErrTampered, reasonTampered, nil)
		}
	}
	return p[:len(p)-pad], nil
}

// recipientKey finds the KeyTransRecipientInfo for kp.Cert (RFC 5652
// §6.2.1) and decrypts the content key.
func recipientKey(infos *node, kp certs.KeyPair, keyLen int, o *Opened) ([]byte, error) {
	if kp.Cert == nil || kp.Key == nil {
		return nil, openErr(ErrCannotDecrypt, "no decryption key is configured for this endpoint", nil)
	}
	priv, ok := kp.Key.(*rsa.PrivateKey)
	if !ok {
		return nil, openErr(ErrCannotDecrypt, "this endpoint's key is not RSA, so it cannot receive S/MIME mail", nil)
	}
	for _, ri := range infos.children {
		if !ri.is(classUniversal, tagSequence) || !matchesRID(child(ri, 1), kp.Cert) {
			continue // other recipients, or kari/kekri/pwri choices
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
	return nil, openErr(ErrCannotDecrypt, fmt.Sprintf("the message is not encrypted to this endpoint's certificate (%s, serial %x); the sender may hold an old or wrong certificate", certs.Name(kp.Cert), kp.Cert.SerialNumber), nil)
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
		asn1.Unmarshal(p.PSourceFunc.Parameters.FullBytes, &opts.Label)
	}
	return opts, "RSAES-OAEP-" + strings.ReplaceAll(opts.Hash.String(), "-", ""), nil
}

// verifyEntity checks the decrypted MIME entity: multipart/signed (RFC 8551
// §3.5.3) or opaque signed-data (§3.5.2), and fills o.
func verifyEntity(entity []byte, roots *x509.CertPool, now time.Time, o *Opened) error {
	hdr, bodyAt, err := splitHeader(entity)
	if err != nil {
		return openErr(ErrMalformed, "the decrypted message header cannot be parsed", err)
	}
	ct, params, _ := mime.ParseMediaType(hdr.Get("Content-Type"))
	var res *signedResult
	switch {
	case ct == "multipart/signed":
		proto := strings.ToLower(params["protocol"])
		if proto != "application/pkcs7-signature" && proto != "application/x-pkcs7-signature" {
			return openErr(ErrNotSigned, "the message is signed with "+orNone(proto)+", not S/MIME", nil)
		}
		content, sigPart, err := splitSigned(entity[bodyAt:], params["boundary"])
		if err != nil {
			return openErr(ErrMalformed, "the signed message is malformed", err)
		}
		ci, err := signatureBlock(sigPart)
		if err != nil {
			return err
		}
		res, err = verifySignedData(ci, content, roots, now)
		if errors.Is(err, ErrTampered) && bytes.Contains(content, []byte("\n")) {
			// RFC 8551 §3.1.1: the signature is over the canonical (CRLF) form.
			if r2, err2 := verifySignedData(ci, canonical(content), roots, now); err2 == nil {
				res, err = r2, nil
			}
		}
		if err != nil {
			return err
		}
	case (ct == "application/pkcs7-mime" || ct == "application/x-pkcs7-mime") && strings.EqualFold(params["smime-type"], "signed-data"):
		der, err := io.ReadAll(decodeBody(bytes.NewReader(entity[bodyAt:]), hdr.Get("Content-Transfer-Encoding")))
		if err != nil {
			return openErr(ErrMalformed, "the signed-data body cannot be decoded", err)
		}
		ci, err := parseNode(der)
		if err != nil {
			return openErr(ErrMalformed, "the signed-data body cannot be parsed", err)
		}
		if res, err = verifySignedData(ci, nil, roots, now); err != nil {
			return err
		}
	default:
		return openErr(ErrNotSigned, "the message was encrypted but not signed, so its sender cannot be verified", nil)
	}
	o.Signer, o.SigningTime = res.signer, res.signingTime
	for _, c := range res.certs {
		if c != res.signer {
			o.Chain = append(o.Chain, c)
		}
	}
	o.Message = unwrapRFC822(res.content)
	return nil
}

func signatureBlock(part []byte) (*node, error) {
	hdr, at, err := splitHeader(part)
	if err != nil {
		return nil, openErr(ErrMalformed, "the signature part is malformed", err)
	}
	der, err := io.ReadAll(decodeBody(bytes.NewReader(part[at:]), hdr.Get("Content-Transfer-Encoding")))
	if err != nil {
		return nil, openErr(ErrMalformed, "the signature part cannot be decoded", err)
	}
	ci, err := parseNode(der)
	if err != nil {
		return nil, openErr(ErrMalformed, "the signature cannot be parsed", err)
	}
	return ci, nil
}

// unwrapRFC822 returns the body of a message/rfc822 entity (RFC 8551 §3.1
// header protection), or the entity itself.
func unwrapRFC822(entity []byte) []byte {
	hdr, at, err := splitHeader(entity)
	if err != nil {
		return entity
	}
	if ct, _, _ := mime.ParseMediaType(hdr.Get("Content-Type")); ct == "message/rfc822" {
		return entity[at:]
	}
	return entity
}

func canonical(b []byte) []byte {
	var out bytes.Buffer
	cw := &crlfWriter{w: &out}
	cw.Write(b)
	return out.Bytes()
}
