package smime

import (
	"bufio"
	"bytes"
	"crypto"
	_ "crypto/sha512"
	"crypto/x509"
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
	// ods is the organisation the signer speaks for (Trust.Organisation).
	ods string
	// SigningTime is the signer's claimed signingTime attribute (zero if
	// absent); it is not trusted for validity, which is checked at now.
	SigningTime time.Time
	// Algorithms names what protected the message, for the trace header:
	// "AES-256-CBC, RSAES-OAEP-SHA256".
	Algorithms string
	// LegacyKeyTransport is true if the key came by RSA PKCS#1 v1.5;
	// accepted, but worth an audit note.
	LegacyKeyTransport bool
	// Recipient is the certificate of the key pair that decrypted the
	// message (OpenWithKeys: the current one, or an older one kept for
	// mail sent before a key rollover).
	Recipient *x509.Certificate
}

// SignerAddresses returns the signer's rfc822Name addresses, lower-cased.
// Checking that one belongs to the From address's organisation is the
// caller's job.
func (o *Opened) SignerAddresses() []string { return certs.Addresses(o.Signer) }

// SignerODSCode returns the ODS code of the organisation the signer speaks
// for: the code its certificate carries, only if it chains to one of the
// Trust's organisation CAs (certs.Trust.Organisation). A mailbox
// certificate, or one from any other anchor, speaks for no organisation:
// ok is false, and the caller ties the signer to an organisation by its
// addresses instead.
func (o *Opened) SignerODSCode() (string, bool) { return o.ods, o.ods != "" }

const maxHeaderBytes = 256 << 10

// Open is OpenWith under the trust of the days before organisation CAs and
// CRLs: every anchor in roots may vouch for an organisation's ODS code,
// and no revocation is checked.
//
// Deprecated: use OpenWith with a certs.Trust that names the
// organisation CAs and the CRLs.
func Open(r io.Reader, recipient certs.KeyPair, roots *x509.CertPool, now time.Time) (*Opened, error) {
	return OpenWith(r, recipient, &certs.Trust{Roots: roots, OrgCAs: roots}, now)
}

// OpenWith reads an S/MIME message from r, decrypts it with recipient's key,
// and verifies its signature and the signer's chain to trust.Roots at now,
// with trust.CRLs (certs.Trust). Accepted: enveloped-data with
// AES-128/192/256-CBC, authEnveloped-data with AES-128/192/256-GCM
// (RFC 5083, RFC 5084), and RSA key transport (RSAES-OAEP with SHA-256, SHA-384, SHA-512 or the
// RFC 4055 default SHA-1 — OAEP needs no collision resistance — and
// PKCS#1 v1.5 decrypted in constant time, RFC 3218 §2.3.2), holding either
// multipart/signed or opaque signed-data with SHA-256/384/512 digests.
// DES, 3DES, RC2 and SHA-1 digests are refused. Every failure is an
// *OpenError wrapping one of the package's sentinels; every failure after
// decryption and before a signature verifies is the same ErrTampered with
// the same Reason, whatever the content held (see verify.go).
//
// The ciphertext is streamed; the plaintext is held once, since nothing
// may be released before its signature is checked.
func OpenWith(r io.Reader, recipient certs.KeyPair, trust *certs.Trust, now time.Time) (*Opened, error) {
	return OpenWithKeys(r, []certs.KeyPair{recipient}, trust, now)
}

// OpenWithKeys is OpenWith for a recipient with several key pairs (a key
// rollover: the current pair first, older ones kept until removed). The
// pair used is the one whose certificate a RecipientInfo names (RFC 5652
// §6.2.1: issuer and serial, or subject key identifier), so the message is
// read once whichever key it was encrypted to; Opened.Recipient says which.
func OpenWithKeys(r io.Reader, recipients []certs.KeyPair, trust *certs.Trust, now time.Time) (*Opened, error) {
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
	case smimeType != "" && smimeType != "enveloped-data" && smimeType != "authenveloped-data":
		return nil, openErr(ErrNotEncrypted, "the message is S/MIME "+smimeType+", not encrypted; it may have been sent in clear", nil)
	}
	body := decodeBody(br, hdr.Get("Content-Transfer-Encoding"))
	b := newBERReader(body)
	o := &Opened{}
	plain, err := decryptEnvelope(b, recipients, o, sizeHint(r))
	if err != nil {
		return nil, err
	}
	if err := verifyEntity(plain, trust, now, o); err != nil {
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

// verifyEntity checks the decrypted MIME entity, multipart/signed (RFC 8551
// §3.5.3) or opaque signed-data (§3.5.2), validates the signer with trust
// at now, and fills o. Any failure before a signature verifies is
// tampered (see verify.go).
func verifyEntity(entity []byte, trust *certs.Trust, now time.Time, o *Opened) error {
	res, err := checkEntity(entity)
	if err != nil {
		var f flaw
		if !errors.As(err, &f) {
			f = flawStructure
		}
		return tampered(f)
	}
	// From here the signature has verified: what follows may name what
	// the message carried.
	if res.weak != "" {
		return openErr(ErrWeakAlgorithm, "the message is signed with "+res.weak+", which is refused; the sender must sign with SHA-256", nil)
	}
	var others []*x509.Certificate
	for _, c := range res.certs {
		if c != res.signer {
			others = append(others, c)
		}
	}
	if err := trust.ValidateSMIME(res.signer, others, now, certs.Sign); err != nil {
		kind := ErrUntrustedSigner
		if errors.Is(err, certs.ErrExpired) || errors.Is(err, certs.ErrNotYetValid) {
			kind = ErrExpiredSigner
		}
		return openErr(kind, "the sender's signing "+err.Error(), err)
	}
	o.Signer, o.SigningTime, o.Chain = res.signer, res.signingTime, others
	o.ods, _ = trust.Organisation(res.signer, others, now)
	o.Message = unwrapRFC822(res.content)
	return nil
}

// checkEntity finds and verifies the signature in entity. Its errors are
// flaws or errors from parsing, never shown as they are.
func checkEntity(entity []byte) (*signedResult, error) {
	hdr, bodyAt, err := splitHeader(entity)
	if err != nil {
		return nil, flaw("the decrypted header does not parse")
	}
	ct, params, _ := mime.ParseMediaType(hdr.Get("Content-Type"))
	switch {
	case ct == "multipart/signed":
		proto := strings.ToLower(params["protocol"])
		if proto != "application/pkcs7-signature" && proto != "application/x-pkcs7-signature" {
			return nil, flaw("multipart/signed with a protocol that is not S/MIME")
		}
		content, sigPart, err := splitSigned(entity[bodyAt:], params["boundary"])
		if err != nil {
			return nil, flaw("the multipart/signed body does not split into content and signature")
		}
		ci, err := signatureBlock(sigPart)
		if err != nil {
			return nil, err
		}
		sd, err := parseSignedInfo(ci, content)
		if err != nil {
			return nil, err
		}
		res, err := sd.verify()
		if errors.Is(err, flawDigest) && bytes.Contains(content, []byte("\n")) {
			// RFC 8551 §3.1.1: the signature is over the canonical (CRLF) form.
			sd.content, sd.sums = canonical(content), map[crypto.Hash][]byte{}
			if r2, err2 := sd.verify(); err2 == nil {
				res, err = r2, nil
			}
		}
		return res, err
	case (ct == "application/pkcs7-mime" || ct == "application/x-pkcs7-mime") && strings.EqualFold(params["smime-type"], "signed-data"):
		body := entity[bodyAt:]
		hint := len(body)
		if strings.EqualFold(strings.TrimSpace(hdr.Get("Content-Transfer-Encoding")), "base64") {
			hint = hint * 3 / 4
		}
		sd, err := parseOpaque(decodeBody(bytes.NewReader(body), hdr.Get("Content-Transfer-Encoding")), hint)
		if err != nil {
			return nil, err
		}
		return sd.verify()
	default:
		return nil, flaw("the decrypted entity is not S/MIME signed")
	}
}

func signatureBlock(part []byte) (*node, error) {
	hdr, at, err := splitHeader(part)
	if err != nil {
		return nil, flaw("the signature part's header does not parse")
	}
	der, err := io.ReadAll(decodeBody(bytes.NewReader(part[at:]), hdr.Get("Content-Transfer-Encoding")))
	if err != nil {
		return nil, flaw("the signature part does not decode")
	}
	ci, err := parseNode(der)
	if err != nil {
		return nil, flawStructure
	}
	return ci, nil
}

// parseOpaque reads ContentInfo → SignedData with its eContent (RFC 5652
// §5.2) from r. The structure is read under the small node budget; the
// eContent is streamed into one buffer of its own, bounded by the entity
// it comes from (which the caller holds, within the message size limit),
// so a large opaque message is read as surely as a detached one.
func parseOpaque(r io.Reader, hint int) (*signedData, error) {
	b := newBERReader(r)
	budget := int64(maxNodeSize)
	enter := func(from *berReader, class, tag int) (*berReader, header, error) {
		h, err := from.readHeader()
		if err != nil || !h.is(class, tag) || !h.constructed {
			return nil, h, flawStructure
		}
		in, err := from.enter(h)
		if err != nil {
			return nil, h, flawStructure
		}
		return in, h, nil
	}
	ci, _, err := enter(b, classUniversal, tagSequence)
	if err != nil {
		return nil, err
	}
	if n, err := ci.readNodeBudget(&budget, 0); err != nil {
		return nil, flawStructure
	} else if oid, ok := oidOf(n); !ok || !oid.Equal(oidSignedData) {
		return nil, flaw("the opaque signature is not CMS signed-data")
	}
	c0, _, err := enter(ci, classContext, 0)
	if err != nil {
		return nil, err
	}
	sd, sdH, err := enter(c0, classUniversal, tagSequence)
	if err != nil {
		return nil, err
	}
	for range 2 { // version, digestAlgorithms
		if _, err := sd.readNodeBudget(&budget, 0); err != nil {
			return nil, flawStructure
		}
	}
	encap, encapH, err := enter(sd, classUniversal, tagSequence)
	if err != nil {
		return nil, err
	}
	typ, err := encap.readNodeBudget(&budget, 0)
	if err != nil {
		return nil, flawStructure
	}
	eType, ok := oidOf(typ)
	if !ok {
		return nil, flaw("no encapsulated content type")
	}
	ec, ecH, err := enter(encap, classContext, 0)
	if err != nil {
		return nil, flaw("the opaque signature holds no content")
	}
	h, err := ec.readHeader()
	if err != nil || !h.is(classUniversal, tagOctetString) {
		return nil, flaw("the signed content is not an OCTET STRING")
	}
	os, err := newOctetStream(ec, h)
	if err != nil {
		return nil, flawStructure
	}
	var content bytes.Buffer
	content.Grow(hint)
	if _, err := content.ReadFrom(os); err != nil {
		return nil, flawStructure
	}
	if ec.leave(ecH) != nil || encap.leave(encapH) != nil {
		return nil, flawStructure
	}
	var rest []*node
	for {
		n, err := sd.next(sdH, &budget)
		if err != nil {
			return nil, flawStructure
		}
		if n == nil {
			break
		}
		if len(rest) == 8 {
			return nil, flaw("SignedData has too many elements")
		}
		rest = append(rest, n)
	}
	return newSignedData(eType, content.Bytes(), rest)
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
