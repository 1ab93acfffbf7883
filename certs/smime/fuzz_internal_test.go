package smime

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"nhsrelay/certs"
	"nhsrelay/certs/certstest"
)

// FuzzVerifyEntity reaches the decrypted-entity parser (multipart/signed
// splitting, signature CMS) directly, which FuzzOpen can rarely reach
// through the encryption.
func FuzzVerifyEntity(f *testing.F) {
	ca := certstest.NewCA(f)
	cert, key := ca.SMIMECertificate(f, "gp@a81001.nhs.test")
	trust := &certs.Trust{Roots: ca.Pool}
	content := []byte("Content-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\nbody\r\n")
	sum := sha256.Sum256(content)
	sig, err := detachedSignature(Signer{Cert: cert, Key: key}, sum[:], time.Now())
	if err != nil {
		f.Fatal(err)
	}
	entity := "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=\"b\"\r\n\r\n--b\r\n" +
		string(content) + "\r\n--b\r\nContent-Type: application/pkcs7-signature\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString(sig) + "\r\n--b--\r\n"
	var o Opened
	if err := verifyEntity([]byte(entity), trust, time.Now(), &o); err != nil {
		f.Fatalf("seed does not verify: %v", err)
	}
	f.Add([]byte(entity))
	f.Add([]byte(entity[:len(entity)/2]))
	f.Add(bytes.ReplaceAll([]byte(entity), []byte("\r\n"), []byte("\n")))
	f.Add([]byte("Content-Type: application/pkcs7-mime; smime-type=signed-data\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString(sig)))
	f.Add([]byte("Content-Type: application/pkcs7-mime; smime-type=signed-data\r\n\r\n" + string(opaqueSignature(f, Signer{Cert: cert, Key: key}, content))))
	f.Add([]byte("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=\"b\"\r\n\r\n--b\r\n--b\r\n--b--"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var o Opened
		err := verifyEntity(data, trust, time.Now(), &o)
		if err == nil && o.Signer == nil {
			t.Fatal("verified without a signer")
		}
		// EFAIL: before a signature verifies, one text whatever the input.
		if errors.Is(err, ErrTampered) && err.Error() != reasonTampered {
			t.Fatalf("ErrTampered with its own text %q", err.Error())
		}
	})
}
