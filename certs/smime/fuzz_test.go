package smime_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"nhsrelay/certs/certstest"
	"nhsrelay/certs/smime"
)

// FuzzOpen feeds the inbound entry point — MIME header, base64, BER, CMS —
// with real sealed messages and broken ones. Open must never panic, and
// must either return a verified message or an *OpenError.
func FuzzOpen(f *testing.F) {
	w := newWorld(f)
	sealed := w.seal(f, sample)
	msgFile := filepath.Join(w.dir, "msg.eml")
	os.WriteFile(msgFile, []byte(sample), 0o644)
	signed := certstest.OpenSSL(f, nil, "cms", "-sign", "-md", "sha256", "-in", msgFile, "-signer", w.sender.certFile, "-inkey", w.sender.keyFile)
	opaque := certstest.OpenSSL(f, nil, "cms", "-sign", "-nodetach", "-in", msgFile, "-signer", w.sender.certFile, "-inkey", w.sender.keyFile)
	for _, seed := range [][]byte{
		sealed,
		certstest.OpenSSL(f, signed, "cms", "-encrypt", "-aes256", w.recipient.certFile),
		certstest.OpenSSL(f, opaque, "cms", "-encrypt", "-aes256", "-recip", w.recipient.certFile, "-keyopt", "rsa_padding_mode:oaep"),
		certstest.OpenSSL(f, signed, "cms", "-encrypt", "-aes256", "-binary", "-outform", "PEM", w.recipient.certFile),
		certstest.OpenSSL(f, signed, "cms", "-encrypt", "-aes-256-gcm", w.recipient.certFile),
		certstest.OpenSSL(f, opaque, "cms", "-encrypt", "-aes-128-gcm", "-stream", w.recipient.certFile),
		signed, opaque,
		sealed[:len(sealed)/3], sealed[:len(sealed)-10],
		bytes.Replace(sealed, []byte("smime-type=enveloped-data"), []byte("smime-type=signed-data"), 1),
		bytes.Replace(sealed, []byte("base64"), []byte("binary"), 1),
		[]byte("Content-Type: application/pkcs7-mime\r\n\r\nMIAGCSqGSIb3DQEHA6CAMIACAQAxgg\r\n"),
		[]byte("Content-Type: application/pkcs7-mime\r\nContent-Transfer-Encoding: binary\r\n\r\n0\x80\x06\x09*\x86H\x86\xf7\r\x01\x07\x03\xa0\x80"),
		[]byte(crlf(sample)), {}, []byte("\r\n\r\n"),
	} {
		f.Add(seed)
	}
	now := time.Now()
	_, err := smime.OpenWith(bytes.NewReader(tamper(f, sealed, 1400)), *w.recipient.kp, w.roots, now)
	if !errors.Is(err, smime.ErrTampered) {
		f.Fatalf("tampered seed: %v", err)
	}
	tamperedReason := err.Error()
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := smime.OpenWith(bytes.NewReader(data), *w.recipient.kp, w.roots, now)
		if err != nil {
			var oe *smime.OpenError
			if !errors.As(err, &oe) || oe.Kind == nil || oe.Reason == "" {
				t.Fatalf("Open error %v (%T) is not a complete *OpenError", err, err)
			}
			if oe.Kind == smime.ErrTampered && err.Error() != tamperedReason {
				t.Fatalf("ErrTampered with its own text %q: every tampered message must read the same", err.Error())
			}
			return
		}
		if o.Signer == nil || o.Message == nil {
			t.Fatalf("Open succeeded without signer or message: %+v", o)
		}
	})
}
