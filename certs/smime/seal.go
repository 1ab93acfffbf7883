package smime

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"

	"nhsrelay/certs"
)

// Signer is the sending organisation's signing certificate, the rest of its
// chain (issuer first) and its key.
type Signer struct {
	Cert  *x509.Certificate
	Chain []*x509.Certificate
	Key   crypto.Signer
}

// OuterHeader is what the encrypted message shows in clear. It must hold
// nothing clinical: the real Subject and headers travel inside, in the
// message/rfc822 part (RFC 8551 §3.1 header protection).
type OuterHeader struct {
	From      []string // mailboxes, "a@b" or "Name <a@b>"
	To        []string
	Date      time.Time // zero means the Sealer's clock
	MessageID string    // with or without <>; empty means a new random one
}

// NeutralSubject is the outer Subject of every sealed message.
const NeutralSubject = "Encrypted NHS message"

// Sealer signs and encrypts. The zero Sealer is the secure default.
type Sealer struct {
	// LegacyKeyTransport is asked once per recipient certificate; true
	// means the content key is sent to it with RSA PKCS#1 v1.5 instead of
	// RSAES-OAEP-SHA-256, for a recipient whose client cannot do OAEP.
	// PKCS#1 v1.5 encryption is exposed to Bleichenbacher-style attacks
	// on the receiving side: the caller must record an audit event for
	// every recipient it returns true for. nil means never.
	LegacyKeyTransport func(*x509.Certificate) bool
	// Now is the clock for signingTime and a missing Date; nil means time.Now.
	Now func() time.Time
}

// Seal is Sealer{}.Seal: OAEP-SHA-256 for every recipient.
func Seal(w io.Writer, original io.Reader, signer Signer, recipients []*x509.Certificate, outer OuterHeader) error {
	return Sealer{}.Seal(w, original, signer, recipients, outer)
}

// Seal writes to w an S/MIME 4.0 message (RFC 8551) that carries original,
// a complete RFC 5322 message, signed by signer and encrypted to every
// certificate in recipients (the caller includes the sender organisation's
// own certificate if it wants to read its sent copy):
//
//	application/pkcs7-mime; smime-type=enveloped-data  (AES-256-CBC, RSAES-OAEP-SHA-256)
//	└ multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256
//	  ├ message/rfc822   the original, lines canonicalised to CRLF
//	  └ application/pkcs7-signature   detached SignedData, SHA-256
//
// Why multipart/signed inside, not opaque signed-data: the digest is taken
// while the content streams past and the signature follows it, so the
// whole message is read once and never held in memory; and after
// decryption a client without S/MIME still shows the message (RFC 8551
// §3.5 lets either be used; the transport-damage risk of multipart/signed
// does not arise inside the encryption). The output is streamed too: the
// cost is a few 64 KiB buffers whatever the message size.
//
// The caller validates certificates first (certs.Trust.ValidateSMIME);
// Seal only refuses keys that fail certs.CheckSMIMEKey (Ed25519 signers
// among them) and non-RSA recipients.
func (s Sealer) Seal(w io.Writer, original io.Reader, signer Signer, recipients []*x509.Certificate, outer OuterHeader) error {
	if signer.Cert == nil || signer.Key == nil {
		return fmt.Errorf("smime: seal: no signing certificate and key")
	}
	if err := certs.CheckSMIMEKey(signer.Key.Public()); err != nil {
		return fmt.Errorf("smime: seal: signing key: %w", err)
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	if err := writeOuterHeader(bw, outer, now()); err != nil {
		return err
	}
	lw := &lineWriter{w: bw}
	b64 := base64.NewEncoder(base64.StdEncoding, lw)
	env, err := newEnvelopeWriter(b64, recipients, s.LegacyKeyTransport)
	if err != nil {
		return err
	}
	boundary := newBoundary()
	// The signed entity: the first body part, headers included (RFC 8551
	// §3.5.3.1 and RFC 1847 §2.1).
	fmt.Fprintf(env, "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256;\r\n boundary=\"%s\"\r\n\r\n"+
		"This is an S/MIME signed message.\r\n\r\n--%s\r\n", boundary, boundary)
	digest := crypto.SHA256.New()
	signed := io.MultiWriter(env, digest)
	// RFC 2046 §5.2.1: message/rfc822 allows only 7bit, 8bit or binary;
	// SMTP has already limited lines to 998 octets. forwarded=no
	// (draft-ietf-lamps-header-protection-07 §4.1.1, the wrapped-message
	// form that RFC 9788 now calls legacy) tells clients this wrapper is
	// header protection, not a forwarded message.
	io.WriteString(signed, "Content-Type: message/rfc822; forwarded=no\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	cw := &crlfWriter{w: signed}
	if _, err := io.Copy(cw, original); err != nil {
		return fmt.Errorf("smime: seal: read message: %w", err)
	}
	if err := endLine(cw, env, digest); err != nil {
		return err
	}
	sig, err := detachedSignature(signer, digest.Sum(nil), now())
	if err != nil {
		return err
	}
	fmt.Fprintf(env, "\r\n--%s\r\nContent-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n"+
		"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\n", boundary)
	sw := base64.NewEncoder(base64.StdEncoding, &lineWriter{w: env})
	sw.Write(sig)
	sw.Close()
	fmt.Fprintf(env, "\r\n--%s--\r\n", boundary)
	if err := env.Close(); err != nil {
		return err
	}
	if err := b64.Close(); err != nil {
		return fmt.Errorf("smime: seal: write: %w", err)
	}
	if _, err := bw.WriteString("\r\n"); err != nil {
		return fmt.Errorf("smime: seal: write: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("smime: seal: write: %w", err)
	}
	return nil
}

// endLine makes the signed content end with CRLF, so the delimiter that
// follows starts on a line of its own (RFC 2046 §5.1.1); the CRLF before
// the delimiter belongs to the delimiter, not to the content.
func endLine(cw *crlfWriter, env io.Writer, digest hash.Hash) error {
	if cw.n == 0 || cw.last == '\n' {
		return nil
	}
	if cw.last == '\r' {
		_, err := io.MultiWriter(env, digest).Write([]byte{'\n'})
		return err
	}
	_, err := io.MultiWriter(env, digest).Write([]byte("\r\n"))
	return err
}

func writeOuterHeader(w *bufio.Writer, h OuterHeader, now time.Time) error {
	for _, v := range append(append([]string{h.MessageID}, h.From...), h.To...) {
		if strings.ContainsAny(v, "\r\n\x00") {
			return fmt.Errorf("smime: seal: header value %q contains a line break", v)
		}
	}
	date := h.Date
	if date.IsZero() {
		date = now
	}
	id := strings.Trim(h.MessageID, "<>")
	if id == "" {
		id = newBoundary() + "@nhsrelay.invalid"
	}
	if len(h.From) > 0 {
		fmt.Fprintf(w, "From: %s\r\n", strings.Join(h.From, ", "))
	}
	if len(h.To) > 0 {
		fmt.Fprintf(w, "To: %s\r\n", strings.Join(h.To, ",\r\n "))
	}
	fmt.Fprintf(w, "Date: %s\r\nMessage-ID: <%s>\r\nSubject: %s\r\nMIME-Version: 1.0\r\n", date.Format(time.RFC1123Z), id, NeutralSubject)
	// RFC 8551 §3.2.2 and §3.3: enveloped-data, name smime.p7m.
	_, err := w.WriteString("Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=\"smime.p7m\"\r\n" +
		"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n")
	if err != nil {
		return fmt.Errorf("smime: seal: write: %w", err)
	}
	return nil
}

func newBoundary() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "nhsrelay-" + hex.EncodeToString(b)
}

// crlfWriter turns bare LF into CRLF (RFC 8551 §3.1.1 canonical form) as
// the text streams through.
type crlfWriter struct {
	w    io.Writer
	last byte
	n    int64
}

func (c *crlfWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if _, err := c.w.Write(p); err != nil {
				return 0, err
			}
			c.last = p[len(p)-1]
			c.n += int64(len(p))
			break
		}
		prev := c.last
		if i > 0 {
			prev = p[i-1]
		}
		if prev == '\r' {
			if _, err := c.w.Write(p[:i+1]); err != nil {
				return 0, err
			}
		} else {
			if _, err := c.w.Write(p[:i]); err != nil {
				return 0, err
			}
			if _, err := c.w.Write([]byte("\r\n")); err != nil {
				return 0, err
			}
		}
		c.last, c.n = '\n', c.n+int64(i+1)
		p = p[i+1:]
	}
	return total, nil
}

// lineWriter breaks base64 into 76-character lines ending in CRLF
// (RFC 2045 §6.8).
type lineWriter struct {
	w   io.Writer
	col int
}

func (l *lineWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		n := min(76-l.col, len(p))
		if _, err := l.w.Write(p[:n]); err != nil {
			return 0, err
		}
		l.col += n
		p = p[n:]
		if l.col == 76 {
			if _, err := l.w.Write([]byte("\r\n")); err != nil {
				return 0, err
			}
			l.col = 0
		}
	}
	return total, nil
}
