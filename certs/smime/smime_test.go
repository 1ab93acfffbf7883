package smime_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nhsrelay/certs"
	"nhsrelay/certs/certstest"
	"nhsrelay/certs/smime"
)

func TestSealOpenRoundTrip(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	sealed := w.seal(t, sample)
	if bytes.Contains(sealed, []byte("Blood results")) || bytes.Contains(sealed, []byte("943 476")) {
		t.Fatal("sealed message shows clinical content in clear")
	}
	if !bytes.Contains(sealed, []byte("Subject: "+smime.NeutralSubject+"\r\n")) {
		t.Errorf("sealed message lacks the neutral subject:\n%s", sealed[:400])
	}
	for name, kp := range map[string]*certs.KeyPair{"recipient": w.recipient.kp, "sender copy": w.copy.kp} {
		o, err := smime.OpenWith(bytes.NewReader(sealed), *kp, w.roots, time.Now())
		if err != nil {
			t.Fatalf("Open as %s: %v", name, err)
		}
		if got, want := string(o.Message), crlf(sample); got != want {
			t.Errorf("Open as %s: Message = %q, want %q", name, got, want)
		}
		if code, ok := o.SignerODSCode(); !ok || code != "A81001" {
			t.Errorf("SignerODSCode() = %q, %v, want A81001", code, ok)
		}
		if o.Algorithms != "AES-256-CBC, RSAES-OAEP-SHA256" || o.LegacyKeyTransport {
			t.Errorf("Algorithms = %q (legacy %v), want AES-256-CBC, RSAES-OAEP-SHA256", o.Algorithms, o.LegacyKeyTransport)
		}
	}
}

func TestSealEdgeMessages(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	for name, msg := range map[string]string{
		"empty":           "",
		"no final break":  "Subject: x\r\n\r\nlast line",
		"ends in CR":      "Subject: x\r\n\r\nbody\r",
		"CRLF already":    "Subject: x\r\n\r\na\r\nb\r\n",
		"boundary-like":   "Subject: x\r\n\r\n--nhsrelay-\r\n--\r\n",
		"binary and long": "Subject: x\r\n\r\n" + strings.Repeat("\x00\xff\xe9", 70000) + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			o, err := smime.OpenWith(bytes.NewReader(w.seal(t, msg)), *w.recipient.kp, w.roots, time.Now())
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			want := strings.ReplaceAll(strings.ReplaceAll(msg, "\r\n", "\n"), "\n", "\r\n")
			if want != "" && !strings.HasSuffix(want, "\n") {
				want += map[bool]string{true: "\n", false: "\r\n"}[strings.HasSuffix(want, "\r")]
			}
			if string(o.Message) != want {
				t.Errorf("Message = %q…, want %q…", trunc(o.Message), trunc([]byte(want)))
			}
		})
	}
}

func trunc(b []byte) string {
	if len(b) > 80 {
		return string(b[:80])
	}
	return string(b)
}

// TestSealReadByOpenSSL: what Seal writes decrypts with `openssl cms
// -decrypt` and verifies with `openssl cms -verify`, with the algorithms
// we promise.
func TestSealReadByOpenSSL(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	sealed := w.seal(t, sample)
	printed := string(certstest.OpenSSL(t, sealed, "cms", "-cmsout", "-print"))
	for _, want := range []string{"rsaesOaep", "aes-256-cbc", ":sha256"} {
		if !strings.Contains(printed, want) {
			t.Errorf("openssl cms -print lacks %q", want)
		}
	}
	for _, bad := range []string{"des-", "rc2", "sha1"} {
		if strings.Contains(strings.ToLower(printed), bad) {
			t.Errorf("openssl cms -print shows %q", bad)
		}
	}
	inner := certstest.OpenSSL(t, sealed, "cms", "-decrypt", "-recip", w.recipient.certFile, "-inkey", w.recipient.keyFile)
	if !bytes.Contains(inner, []byte("multipart/signed")) {
		t.Fatalf("decrypted entity is not multipart/signed:\n%s", trunc(inner))
	}
	content := certstest.OpenSSL(t, inner, "cms", "-verify", "-CAfile", w.caFile, "-purpose", "smimesign")
	want := "Content-Type: message/rfc822; forwarded=no\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + crlf(sample)
	if string(content) != want {
		t.Errorf("openssl verified content = %q, want %q", content, want)
	}
	// The sender's own copy decrypts too; a stranger's key does not.
	certstest.OpenSSL(t, sealed, "cms", "-decrypt", "-recip", w.copy.certFile, "-inkey", w.copy.keyFile)
	stranger := w.issue(t, "stranger@elsewhere.nhs.test")
	if _, err := opensslErr(sealed, "cms", "-decrypt", "-recip", stranger.certFile, "-inkey", stranger.keyFile); err == nil {
		t.Error("openssl decrypted with a key the message was not sealed to")
	}
}

// TestOpenOpenSSLMail: mail that `openssl cms -sign | openssl cms -encrypt`
// makes opens, with PKCS#1 v1.5 and with OAEP key transport, detached and
// opaque signatures.
func TestOpenOpenSSLMail(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	msgFile := filepath.Join(w.dir, "msg.eml")
	os.WriteFile(msgFile, []byte(sample), 0o644)
	for _, tc := range []struct {
		name       string
		signArgs   []string
		encArgs    []string
		legacy     bool
		algorithms string
	}{
		{"pkcs1v15", nil, nil, true, "AES-256-CBC, RSA-PKCS1-v1_5"},
		{"oaep", nil, []string{"-keyopt", "rsa_padding_mode:oaep"}, false, "AES-256-CBC, RSAES-OAEP-SHA1"},
		{"oaep-sha256", nil, []string{"-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256", "-keyopt", "rsa_mgf1_md:sha256"}, false, "AES-256-CBC, RSAES-OAEP-SHA256"},
		{"opaque", []string{"-nodetach"}, []string{"-keyopt", "rsa_padding_mode:oaep"}, false, "AES-256-CBC, RSAES-OAEP-SHA1"},
		{"aes128", nil, []string{"-aes128"}, true, "AES-128-CBC, RSA-PKCS1-v1_5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			signed := certstest.OpenSSL(t, nil, append([]string{"cms", "-sign", "-md", "sha256", "-in", msgFile,
				"-signer", w.sender.certFile, "-inkey", w.sender.keyFile}, tc.signArgs...)...)
			sealed := certstest.OpenSSL(t, signed, append([]string{"cms", "-encrypt", "-aes256", "-recip", w.recipient.certFile}, tc.encArgs...)...)
			o, err := smime.OpenWith(bytes.NewReader(sealed), *w.recipient.kp, w.roots, time.Now())
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if got, want := string(o.Message), crlf(sample); got != want {
				t.Errorf("Message = %q, want %q", got, want)
			}
			if o.LegacyKeyTransport != tc.legacy || o.Algorithms != tc.algorithms {
				t.Errorf("Algorithms = %q legacy %v, want %q legacy %v", o.Algorithms, o.LegacyKeyTransport, tc.algorithms, tc.legacy)
			}
			if !o.Signer.Equal(w.sender.kp.Cert) {
				t.Errorf("Signer = %s, want the sender's certificate", o.Signer.Subject)
			}
		})
	}
}

// TestOpenFailures: each way a message can be bad gives its typed error
// and words a person can act on.
func TestOpenFailures(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	sealed := w.seal(t, sample)
	msgFile := filepath.Join(w.dir, "msg.eml")
	os.WriteFile(msgFile, []byte(sample), 0o644)
	signedOnly := certstest.OpenSSL(t, nil, "cms", "-sign", "-md", "sha256", "-in", msgFile, "-signer", w.sender.certFile, "-inkey", w.sender.keyFile)
	otherCA := certstest.NewCA(t)

	weak := weakSigner(t, w)
	weakSigned := certstest.OpenSSL(t, nil, "cms", "-sign", "-md", "sha256", "-in", msgFile, "-signer", weak.certFile, "-inkey", weak.keyFile)
	sha1Signed := certstest.OpenSSL(t, nil, "cms", "-sign", "-md", "sha1", "-in", msgFile, "-signer", w.sender.certFile, "-inkey", w.sender.keyFile)

	now := time.Now()
	for _, tc := range []struct {
		name  string
		input []byte
		key   *certs.KeyPair
		roots *certs.Trust
		now   time.Time
		kind  error
		words string
	}{
		{name: "tampered content", input: tamper(t, sealed, 1400), kind: smime.ErrTampered, words: "altered or damaged in transit"},
		{name: "tampered signature", input: tamper(t, sealed, -400), kind: smime.ErrTampered, words: "altered or damaged in transit"},
		{name: "truncated", input: sealed[:len(sealed)/2], kind: smime.ErrMalformed, words: "truncated"},
		{name: "wrong key", input: sealed, key: w.issue(t, "other@rrk.nhs.test").kp, kind: smime.ErrCannotDecrypt, words: "not encrypted to this endpoint's certificate"},
		{name: "expired signer", input: sealed, now: w.sender.kp.Cert.NotAfter.Add(time.Hour), kind: smime.ErrExpiredSigner,
			words: "certificate for ODS A81001 expired on " + w.sender.kp.Cert.NotAfter.UTC().Format("2006-01-02")},
		{name: "not yet valid signer", input: sealed, now: w.sender.kp.Cert.NotBefore.Add(-time.Hour), kind: smime.ErrExpiredSigner, words: "not yet valid until"},
		{name: "untrusted CA", input: sealed, roots: &certs.Trust{Roots: otherCA.Pool}, kind: smime.ErrUntrustedSigner, words: "not issued by a trusted NHS CA"},
		{name: "weak signer key", input: certstest.OpenSSL(t, weakSigned, "cms", "-encrypt", "-aes256", w.recipient.certFile), kind: smime.ErrUntrustedSigner, words: "key too weak: RSA 1024 bits"},
		{name: "SHA-1 signature", input: certstest.OpenSSL(t, sha1Signed, "cms", "-encrypt", "-aes256", w.recipient.certFile), kind: smime.ErrWeakAlgorithm, words: "SHA-1"},
		{name: "3DES", input: certstest.OpenSSL(t, signedOnly, "cms", "-encrypt", "-des3", w.recipient.certFile), kind: smime.ErrWeakAlgorithm, words: "3DES"},
		{name: "plain message", input: []byte(crlf(sample)), kind: smime.ErrNotEncrypted, words: "not S/MIME encrypted"},
		{name: "signed only", input: signedOnly, kind: smime.ErrNotEncrypted, words: "not S/MIME encrypted"},
		{name: "opaque signed only", input: certstest.OpenSSL(t, nil, "cms", "-sign", "-nodetach", "-in", msgFile, "-signer", w.sender.certFile, "-inkey", w.sender.keyFile),
			kind: smime.ErrNotEncrypted, words: "not encrypted"},
		{name: "encrypted unsigned", input: certstest.OpenSSL(t, nil, "cms", "-encrypt", "-aes256", "-in", msgFile, w.recipient.certFile), kind: smime.ErrTampered, words: "or was not signed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, roots, at := w.recipient.kp, w.roots, now
			if tc.key != nil {
				key = tc.key
			}
			if tc.roots != nil {
				roots = tc.roots
			}
			if !tc.now.IsZero() {
				at = tc.now
			}
			o, err := smime.OpenWith(bytes.NewReader(tc.input), *key, roots, at)
			if err == nil {
				t.Fatalf("Open = %v, nil; want %v", o, tc.kind)
			}
			var oe *smime.OpenError
			if !errors.Is(err, tc.kind) || !errors.As(err, &oe) {
				t.Fatalf("Open error = %v (%T), want %v", err, err, tc.kind)
			}
			if !strings.Contains(oe.Error(), tc.words) {
				t.Errorf("Open error = %q, want it to say %q", oe.Error(), tc.words)
			}
		})
	}
}

// tamper flips one bit of the CMS at offset at (from the end if negative).
func tamper(t testing.TB, sealed []byte, at int) []byte {
	t.Helper()
	i := bytes.Index(sealed, []byte("\r\n\r\n")) + 4
	body, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(string(sealed[i:]), "\r\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	if at < 0 {
		at += len(body)
	}
	body[at] ^= 0x01
	return append(append([]byte{}, sealed[:i]...), base64.StdEncoding.EncodeToString(body)...)
}

// weakSigner issues an S/MIME certificate with an RSA-1024 key, which the
// dev CA would refuse to make.
func weakSigner(t *testing.T, w *world) party {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tca := &certstest.CA{Cert: w.ca.Cert, Key: w.ca.Key}
	cert := tca.Issue(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "weak@a81001.nhs.test"}, EmailAddresses: []string{"weak@a81001.nhs.test"},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	}, key.Public())
	p := party{certFile: filepath.Join(w.dir, "weak.crt"), keyFile: filepath.Join(w.dir, "weak.key")}
	certstest.WritePEM(t, p.certFile, cert)
	os.WriteFile(p.keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
	return p
}

func TestSealRefuses(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	tca := &certstest.CA{Cert: w.ca.Cert, Key: w.ca.Key}
	ecCert := tca.TLSCertificate(t, "mx.rrk.nhs.test").Leaf
	for name, tc := range map[string]struct {
		recipients []*x509.Certificate
		outer      smime.OuterHeader
	}{
		"no recipients":    {nil, smime.OuterHeader{}},
		"EC recipient":     {[]*x509.Certificate{ecCert}, smime.OuterHeader{}},
		"header injection": {[]*x509.Certificate{w.recipient.kp.Cert}, smime.OuterHeader{To: []string{"a@b\r\nBcc: x@y"}}},
	} {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			if err := smime.Seal(&out, strings.NewReader(sample), w.sender.signer(), tc.recipients, tc.outer); err == nil {
				t.Errorf("Seal = nil, want an error")
			}
		})
	}
}

// TestLegacyKeyTransport: a recipient the caller marks as legacy gets
// PKCS#1 v1.5, openssl still decrypts, and Open reports it.
func TestLegacyKeyTransport(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	var out bytes.Buffer
	s := smime.Sealer{LegacyKeyTransport: func(c *x509.Certificate) bool { return c.Equal(w.recipient.kp.Cert) }}
	if err := s.Seal(&out, strings.NewReader(sample), w.sender.signer(), []*x509.Certificate{w.recipient.kp.Cert}, smime.OuterHeader{}); err != nil {
		t.Fatal(err)
	}
	if printed := string(certstest.OpenSSL(t, out.Bytes(), "cms", "-cmsout", "-print")); !strings.Contains(printed, "rsaEncryption") {
		t.Error("legacy recipient did not get rsaEncryption key transport")
	}
	certstest.OpenSSL(t, out.Bytes(), "cms", "-decrypt", "-recip", w.recipient.certFile, "-inkey", w.recipient.keyFile)
	o, err := smime.OpenWith(bytes.NewReader(out.Bytes()), *w.recipient.kp, w.roots, time.Now())
	if err != nil || !o.LegacyKeyTransport {
		t.Fatalf("Open = %+v, %v; want LegacyKeyTransport", o, err)
	}
}

// TestOpenLargeOpaque: opaque signed-data bigger than the structure budget
// (6 MB, as a scanned referral would be) opens; its eContent is streamed,
// not read as one node.
func TestOpenLargeOpaque(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	msg := crlf(sample) + strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n", 6<<20/78)
	msgFile := filepath.Join(w.dir, "large.eml")
	os.WriteFile(msgFile, []byte(msg), 0o644)
	signed := certstest.OpenSSL(t, nil, "cms", "-sign", "-nodetach", "-md", "sha256", "-binary", "-in", msgFile,
		"-signer", w.sender.certFile, "-inkey", w.sender.keyFile)
	sealed := certstest.OpenSSL(t, signed, "cms", "-encrypt", "-aes256", "-recip", w.recipient.certFile)
	o, err := smime.OpenWith(bytes.NewReader(sealed), *w.recipient.kp, w.roots, time.Now())
	if err != nil {
		t.Fatalf("Open(%d-byte opaque message): %v", len(msg), err)
	}
	if !bytes.Equal(o.Message, []byte(msg)) {
		t.Errorf("Message is %d bytes, want the %d signed", len(o.Message), len(msg))
	}
}

// TestOpenAuthEnveloped: AES-GCM authEnveloped-data (RFC 5083, RFC 8551
// §2.7 MUST) from openssl cms opens; a flipped bit fails its tag.
func TestOpenAuthEnveloped(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	msgFile := filepath.Join(w.dir, "msg.eml")
	os.WriteFile(msgFile, []byte(sample), 0o644)
	signed := certstest.OpenSSL(t, nil, "cms", "-sign", "-md", "sha256", "-in", msgFile, "-signer", w.sender.certFile, "-inkey", w.sender.keyFile)
	for _, tc := range []struct {
		cipher, algorithms string
		extra              []string
	}{
		{"-aes-256-gcm", "AES-256-GCM, RSA-PKCS1-v1_5", nil},
		{"-aes-128-gcm", "AES-128-GCM, RSAES-OAEP-SHA256", []string{"-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256", "-keyopt", "rsa_mgf1_md:sha256"}},
		{"-aes-256-gcm", "AES-256-GCM, RSA-PKCS1-v1_5", []string{"-stream"}},
	} {
		sealed := certstest.OpenSSL(t, signed, append([]string{"cms", "-encrypt", tc.cipher, "-recip", w.recipient.certFile}, tc.extra...)...)
		if !bytes.Contains(sealed, []byte("smime-type=authEnveloped-data")) {
			t.Fatalf("openssl %s did not make authEnveloped-data:\n%s", tc.cipher, trunc(sealed))
		}
		o, err := smime.OpenWith(bytes.NewReader(sealed), *w.recipient.kp, w.roots, time.Now())
		if err != nil {
			t.Fatalf("Open(%s %v): %v", tc.cipher, tc.extra, err)
		}
		if string(o.Message) != crlf(sample) || o.Algorithms != tc.algorithms {
			t.Errorf("Open(%s): Algorithms %q, Message %q", tc.cipher, o.Algorithms, trunc(o.Message))
		}
		_, err = smime.OpenWith(bytes.NewReader(tamper(t, []byte(crlf(string(sealed))), -30)), *w.recipient.kp, w.roots, time.Now())
		if !errors.Is(err, smime.ErrTampered) {
			t.Errorf("Open(%s, tampered) = %v, want ErrTampered", tc.cipher, err)
		}
	}
}

// TestOpenOrganisationNeedsOrgCA: the same organisation certificate
// speaks for A81001 only when its CA is an organisation CA; a mailbox
// anchor's word on an ODS code counts for nothing.
func TestOpenOrganisationNeedsOrgCA(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	sealed := w.seal(t, sample)
	for name, tc := range map[string]struct {
		trust *certs.Trust
		ods   string
	}{
		"organisation CA": {&certs.Trust{Roots: w.roots.Roots, OrgCAs: w.roots.Roots}, "A81001"},
		"mailbox anchor":  {&certs.Trust{Roots: w.roots.Roots}, ""},
		"other org CA":    {&certs.Trust{Roots: w.roots.Roots, OrgCAs: certstest.NewCA(t).Pool}, ""},
	} {
		o, err := smime.OpenWith(bytes.NewReader(sealed), *w.recipient.kp, tc.trust, time.Now())
		if err != nil {
			t.Fatalf("%s: Open: %v", name, err)
		}
		if ods, ok := o.SignerODSCode(); ods != tc.ods || ok != (tc.ods != "") {
			t.Errorf("%s: SignerODSCode() = %q, %v; want %q", name, ods, ok, tc.ods)
		}
	}
}

// TestOpenRevokedSigner: a signer on its CA's CRL is refused, saying when.
func TestOpenRevokedSigner(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	sealed := w.seal(t, sample)
	tca := &certstest.CA{Cert: w.ca.Cert, Key: w.ca.Key}
	at := time.Now().Add(-48 * time.Hour).UTC()
	rl, err := x509.ParseRevocationList(tca.CRL(t, at, time.Now().Add(24*time.Hour), w.sender.kp.Cert))
	if err != nil {
		t.Fatal(err)
	}
	trust := &certs.Trust{Roots: w.roots.Roots, OrgCAs: w.roots.Roots, CRLs: certs.NewCRLSet(rl)}
	_, err = smime.OpenWith(bytes.NewReader(sealed), *w.recipient.kp, trust, time.Now())
	want := "certificate for ODS A81001 was revoked on " + at.Format("2006-01-02")
	if !errors.Is(err, smime.ErrUntrustedSigner) || !errors.Is(err, certs.ErrRevoked) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open with the signer revoked = %v, want ErrUntrustedSigner saying %q", err, want)
	}
}

// TestSealRefusesEd25519: certs.CheckKey lets Ed25519 through for TLS, but
// S/MIME cannot sign with it; Seal says so instead of failing later.
func TestSealRefusesEd25519(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := smime.Signer{Cert: w.sender.kp.Cert, Key: key}
	err = smime.Seal(io.Discard, strings.NewReader(sample), s, []*x509.Certificate{w.recipient.kp.Cert}, smime.OuterHeader{})
	if !errors.Is(err, certs.ErrWeakKey) || !strings.Contains(err.Error(), "Ed25519") {
		t.Fatalf("Seal with an Ed25519 key = %v, want ErrWeakKey naming Ed25519", err)
	}
}

// TestSignerKeyTypes: an organisation signs with ECDSA P-256 (what
// IssueSMIME makes; RFC 5753, RFC 5754 §3.3 ecdsa-with-SHA256) or with RSA
// (rsaEncryption, RFC 3370 §3.2). Either way openssl cms verifies what Seal
// signed, and Open verifies what openssl cms signed.
func TestSignerKeyTypes(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	msgFile := filepath.Join(w.dir, "msg.eml")
	os.WriteFile(msgFile, []byte(sample), 0o644)
	for _, tc := range []struct {
		name   string
		signer party
		sigAlg string // as openssl cms -print names it
	}{
		{"ecdsa-p256", w.sender, "ecdsa-with-SHA256"},
		{"rsa-3072", w.senderRSA, "rsaEncryption"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			if err := smime.Seal(&out, strings.NewReader(sample), tc.signer.signer(), []*x509.Certificate{w.recipient.kp.Cert}, smime.OuterHeader{}); err != nil {
				t.Fatalf("Seal: %v", err)
			}
			inner := certstest.OpenSSL(t, out.Bytes(), "cms", "-decrypt", "-recip", w.recipient.certFile, "-inkey", w.recipient.keyFile)
			printed := string(certstest.OpenSSL(t, inner, "cms", "-cmsout", "-print", "-inform", "SMIME"))
			if !strings.Contains(printed, tc.sigAlg) {
				t.Errorf("signature algorithm: openssl cms -print lacks %q", tc.sigAlg)
			}
			content := certstest.OpenSSL(t, inner, "cms", "-verify", "-CAfile", w.caFile, "-purpose", "smimesign")
			if !bytes.HasSuffix(content, []byte(crlf(sample))) {
				t.Errorf("openssl verified content = %q", trunc(content))
			}
			o, err := smime.OpenWith(bytes.NewReader(out.Bytes()), *w.recipient.kp, w.roots, time.Now())
			if err != nil || !o.Signer.Equal(tc.signer.kp.Cert) {
				t.Fatalf("Open(Seal's output) = %v, %v", o, err)
			}

			// openssl signs with the same key; Open verifies it.
			for _, opaque := range []bool{false, true} {
				args := []string{"cms", "-sign", "-md", "sha256", "-in", msgFile, "-signer", tc.signer.certFile, "-inkey", tc.signer.keyFile}
				if opaque {
					args = append(args, "-nodetach")
				}
				signed := certstest.OpenSSL(t, nil, args...)
				sealed := certstest.OpenSSL(t, signed, "cms", "-encrypt", "-aes256", "-recip", w.recipient.certFile, "-keyopt", "rsa_padding_mode:oaep")
				o, err := smime.OpenWith(bytes.NewReader(sealed), *w.recipient.kp, w.roots, time.Now())
				if err != nil {
					t.Fatalf("Open(openssl-signed, opaque %v): %v", opaque, err)
				}
				if !o.Signer.Equal(tc.signer.kp.Cert) || string(o.Message) != crlf(sample) {
					t.Errorf("Open(openssl-signed, opaque %v): signer %s, message %q", opaque, o.Signer.Subject, trunc(o.Message))
				}
			}
		})
	}
}
