package smime

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"nhsrelay/certs"
	"nhsrelay/certs/certstest"
)

// kit is a CA, a signer and a recipient for tests inside the package.
type kit struct {
	ca        *certstest.CA
	trust     *certs.Trust
	signer    Signer
	recipient certs.KeyPair
}

func newKit(t testing.TB) *kit {
	t.Helper()
	ca := certstest.NewCA(t)
	sc, sk := ca.SMIMECertificate(t, "gp@a81001.nhs.test")
	rc, rk := ca.SMIMECertificate(t, "results@rrk.nhs.test")
	return &kit{ca: ca, trust: &certs.Trust{Roots: ca.Pool}, signer: Signer{Cert: sc, Key: sk},
		recipient: certs.KeyPair{Cert: rc, Key: rk}}
}

// encrypt wraps any plaintext entity in AES-256-CBC enveloped-data to the
// kit's recipient, as an attacker with the recipient's certificate can.
func (k *kit) encrypt(t testing.TB, plain []byte) []byte {
	t.Helper()
	var der bytes.Buffer
	env, err := newEnvelopeWriter(&der, []*x509.Certificate{k.recipient.Cert}, nil)
	if err != nil {
		t.Fatal(err)
	}
	env.Write(plain)
	if err := env.Close(); err != nil {
		t.Fatal(err)
	}
	return []byte("Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString(der.Bytes()) + "\r\n")
}

// signedEntity is multipart/signed over content with a detached signature.
func signedEntity(sig []byte, content string) string {
	return "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"b\"\r\n\r\n--b\r\n" +
		content + "\r\n--b\r\nContent-Type: application/pkcs7-signature\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString(sig) + "\r\n--b--\r\n"
}

func (k *kit) detached(t testing.TB, content string) []byte {
	t.Helper()
	sum := sha256.Sum256([]byte(content))
	sig, err := detachedSignature(k.signer, sum[:], time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// TestNoPlaintextInErrors: whatever the decrypted content holds, every
// failure before a signature verifies is the same ErrTampered with the same
// Reason, and no byte of the content reaches Error(), Reason or Detail
// (EFAIL: a DSN must not echo, or hint at, unverified plaintext).
func TestNoPlaintextInErrors(t *testing.T) {
	t.Parallel()
	k := newKit(t)
	const marker = "SECRETxMARKER"
	content := "Content-Type: message/rfc822\r\n\r\nSubject: " + marker + "\r\n\r\n" + marker + "\r\n"
	sig := k.detached(t, content)
	sha1Sig := noAttrSignature(t, k.signer, oidData, oidSHA1, []byte(content)) // signed with SHA-256: does not verify
	weirdAlg := replaceLast(sig, mustOID(oidRSAEncryption), mustOID(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 99}))
	for name, plain := range map[string]string{
		"protocol":            "Content-Type: multipart/signed; protocol=\"" + marker + "\"; boundary=b\r\n\r\n--b\r\nx\r\n--b--\r\n",
		"content type":        "Content-Type: application/" + marker + "\r\n\r\n" + marker,
		"unsigned":            "Content-Type: text/plain\r\n\r\n" + marker + "\r\n",
		"no header end":       marker + ": " + marker,
		"bad header line":     "Content-Type: text/plain\r\n" + marker + "\r\n\r\nbody",
		"smime-type":          "Content-Type: application/pkcs7-mime; smime-type=" + marker + "\r\n\r\n",
		"opaque garbage":      "Content-Type: application/pkcs7-mime; smime-type=signed-data\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString([]byte(marker)),
		"opaque binary":       "Content-Type: application/pkcs7-mime; smime-type=signed-data\r\n\r\n0\x80\x06\x03" + marker,
		"no boundary":         "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=" + marker + "\r\n\r\n" + marker,
		"signature garbage":   signedEntity([]byte(marker), content),
		"content altered":     strings.Replace(signedEntity(sig, content), "Subject: "+marker, "Subject: "+marker+"!", 1),
		"sha1 not verifying":  signedEntity(sha1Sig, content),
		"unknown sig alg":     signedEntity(weirdAlg, content),
		"signature truncated": signedEntity(sig[:len(sig)-40], content),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := OpenWith(bytes.NewReader(k.encrypt(t, []byte(plain))), k.recipient, k.trust, time.Now())
			var oe *OpenError
			if !errors.As(err, &oe) {
				t.Fatalf("Open error = %v (%T), want *OpenError", err, err)
			}
			if !errors.Is(err, ErrTampered) || oe.Kind != ErrTampered || oe.Reason != reasonTampered {
				t.Errorf("Open error kind %v, reason %q; want ErrTampered with the one fixed reason", oe.Kind, oe.Reason)
			}
			for what, s := range map[string]string{"Error()": err.Error(), "Detail": oe.Detail} {
				if strings.Contains(s, marker) || strings.Contains(s, "MARKER") {
					t.Errorf("%s = %q echoes decrypted content", what, s)
				}
			}
			if err.Error() != reasonTampered {
				t.Errorf("Error() = %q, want exactly the fixed reason", err.Error())
			}
		})
	}
	// The same content, signed properly, opens: the cases above fail for
	// their flaw, not for the kit.
	if _, err := OpenWith(bytes.NewReader(k.encrypt(t, []byte(signedEntity(sig, content)))), k.recipient, k.trust, time.Now()); err != nil {
		t.Fatalf("control message: %v", err)
	}
}

func replaceLast(b, old, new []byte) []byte {
	i := bytes.LastIndex(b, old)
	out := append([]byte{}, b...)
	copy(out[i:], new[:len(old)])
	return out
}

// TestSignatureAlgorithmMustMatchDigest: sha384WithRSAEncryption over a
// SHA-256 digest is refused; sha256WithRSAEncryption verifies.
func TestSignatureAlgorithmMustMatchDigest(t *testing.T) {
	t.Parallel()
	k := newKit(t)
	content := "Content-Type: text/plain\r\n\r\nresults\r\n"
	sig := k.detached(t, content)
	for _, tc := range []struct {
		oid asn1.ObjectIdentifier
		ok  bool
	}{
		{oidRSAEncryption, true},
		{oidRSASHA256, true},
		{oidRSASHA384, false},
		{oidRSASHA512, false},
	} {
		s := replaceLast(sig, mustOID(oidRSAEncryption), mustOID(tc.oid))
		var o Opened
		err := verifyEntity([]byte(signedEntity(s, content)), k.trust, time.Now(), &o)
		if (err == nil) != tc.ok {
			t.Errorf("signature algorithm %v with SHA-256 digest: err = %v, want ok=%v", tc.oid, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrTampered) {
			t.Errorf("signature algorithm %v: err = %v, want ErrTampered", tc.oid, err)
		}
	}
}

// TestSignedAttributesRequiredForOtherContent: RFC 5652 §5.3 — without
// signed attributes the content type is unsigned, so only id-data may go
// without them.
func TestSignedAttributesRequiredForOtherContent(t *testing.T) {
	t.Parallel()
	k := newKit(t)
	content := []byte("Content-Type: text/plain\r\n\r\nresults\r\n")
	for _, tc := range []struct {
		eType asn1.ObjectIdentifier
		ok    bool
	}{
		{oidData, true},
		{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 4}, false}, // id-ct-TSTInfo
	} {
		sig := noAttrSignature(t, k.signer, tc.eType, oidSHA256, content)
		var o Opened
		err := verifyEntity([]byte(signedEntity(sig, string(content))), k.trust, time.Now(), &o)
		if (err == nil) != tc.ok {
			t.Errorf("content type %v without signed attributes: err = %v, want ok=%v", tc.eType, err, tc.ok)
		}
	}
}

// noAttrSignature is a detached SignedData whose SHA-256 signature is over
// the content itself (no signed attributes), with content type eType,
// claiming digest algorithm digest.
func noAttrSignature(t *testing.T, s Signer, eType, digest asn1.ObjectIdentifier, content []byte) []byte {
	t.Helper()
	sum := sha256.Sum256(content)
	sig, err := s.Key.Sign(nil, sum[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	ias := mustMarshal(struct {
		Issuer asn1.RawValue
		Serial asn1.RawValue
	}{asn1.RawValue{FullBytes: s.Cert.RawIssuer}, asn1.RawValue{FullBytes: mustMarshal(s.Cert.SerialNumber)}})
	sha := tlv(0x30, mustOID(digest))
	si := tlv(0x30, []byte{2, 1, 1}, ias, sha, tlv(0x30, mustOID(oidRSAEncryption), []byte{5, 0}), mustMarshal(sig))
	sd := tlv(0x30, []byte{2, 1, 1}, tlv(0x31, sha), tlv(0x30, mustOID(eType)), tlv(0xa0, s.Cert.Raw), tlv(0x31, si))
	return tlv(0x30, mustOID(oidSignedData), tlv(0xa0, sd))
}

// TestOAEPLabelMustParse: a pSpecified label that is not an OCTET STRING
// is a malformed key transport, not an empty label.
func TestOAEPLabelMustParse(t *testing.T) {
	t.Parallel()
	sha := tlv(0x30, mustOID(oidSHA256), []byte{5, 0})
	mgf := tlv(0x30, mustOID(oidMGF1), sha)
	for _, tc := range []struct {
		label []byte
		ok    bool
	}{
		{[]byte{4, 3, 'a', 'b', 'c'}, true},
		{[]byte{2, 1, 5}, false}, // an INTEGER
		{[]byte{4, 9, 'a'}, false},
	} {
		params := tlv(0x30, tlv(0xa0, sha), tlv(0xa1, mgf), tlv(0xa2, tlv(0x30, mustOID(oidPSpecified), tc.label)))
		n, err := parseNode(params)
		if err != nil {
			if tc.ok {
				t.Fatal(err)
			}
			continue
		}
		opts, _, err := oaepOptions(n)
		if (err == nil) != tc.ok {
			t.Errorf("label % x: err = %v, want ok=%v", tc.label, err, tc.ok)
		}
		if err == nil && string(opts.Label) != "abc" {
			t.Errorf("label = %q, want abc", opts.Label)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("label % x: err = %v, want ErrMalformed", tc.label, err)
		}
	}
}

// opaqueSignature is opaque signed-data (RFC 8551 §3.5.2) over content:
// the detached signature with the content put inside.
func opaqueSignature(t testing.TB, s Signer, content []byte) []byte {
	t.Helper()
	sum := sha256.Sum256(content)
	sig, err := detachedSignature(s, sum[:], time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ci, err := parseNode(sig)
	if err != nil {
		t.Fatal(err)
	}
	encap, err := parseNode(tlv(0x30, mustOID(oidData), tlv(0xa0, tlv(0x04, content))))
	if err != nil {
		t.Fatal(err)
	}
	ci.children[1].children[0].children[2] = encap
	return ci.der()
}

// TestOpaqueSignatureVerifies: the opaque form the fuzz seeds use opens,
// binary and base64.
func TestOpaqueSignatureVerifies(t *testing.T) {
	t.Parallel()
	k := newKit(t)
	content := []byte("Content-Type: text/plain\r\n\r\nresults\r\n")
	der := opaqueSignature(t, k.signer, content)
	for _, entity := range []string{
		"Content-Type: application/pkcs7-mime; smime-type=signed-data\r\n\r\n" + string(der),
		"Content-Type: application/pkcs7-mime; smime-type=signed-data\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString(der),
	} {
		var o Opened
		if err := verifyEntity([]byte(entity), k.trust, time.Now(), &o); err != nil || !bytes.Equal(o.Message, content) {
			t.Fatalf("verifyEntity(opaque) = %v, message %q", err, o.Message)
		}
	}
}
