package smimepolicy_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nhsrelay/certs/certstest"
	"nhsrelay/relay"
)

// bodyEntity is a MIME body part as Thunderbird and Outlook sign it: only
// Content-* fields, no From, To or Subject.
func bodyEntity(token string) []byte {
	return []byte("Content-Type: text/plain; charset=UTF-8; format=flowed\r\nContent-Language: en-GB\r\n" +
		"Content-Transfer-Encoding: 7bit\r\n\r\nHaemoglobin normal. " + token + "\r\n")
}

// thunderbird builds mail the way Thunderbird and Outlook send it: openssl
// cms -sign over the body entity alone (multipart/signed), a message whose
// header is From/To/Subject plus the signed entity's MIME fields, openssl
// cms -encrypt of that with From/To/Subject in the outer header, and the
// trace fields a relay adds in front. signerName is a key pair in KeysDir;
// from is the From of both headers.
func (f *fixture) thunderbird(t *testing.T, signerName, from, token string) []byte {
	t.Helper()
	tmp := t.TempDir()
	entityFile := filepath.Join(tmp, "entity.txt")
	if err := os.WriteFile(entityFile, bodyEntity(token), 0o600); err != nil {
		t.Fatal(err)
	}
	signed := certstest.OpenSSL(t, nil, "cms", "-sign", "-in", entityFile, "-signer", f.certFile[signerName],
		"-inkey", filepath.Join(f.keys, signerName+".key"), "-md", "sha256")
	subject := "blood results for patient " + token
	msg := append([]byte("From: Results <"+from+">\r\nTo: <"+hostedAddr+">\r\nSubject: "+subject+"\r\n"), signed...)
	enc := certstest.OpenSSL(t, msg, "cms", "-encrypt", "-aes256", "-from", "Results <"+from+">", "-to", hostedAddr, "-subject", subject,
		"-recip", f.certFile[hostedAddr], "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256")
	return append([]byte("Received: from mua.a81001.nhs.test by relay.rx9.nhs.test with ESMTPS; Mon, 2 Mar 2026 09:00:01 +0000\r\n"+
		"Date: Mon, 02 Mar 2026 09:00:00 +0000\r\nMessage-ID: <"+token+"@a81001.nhs.test>\r\n"+
		"X-NHSRelay-SMIME: verified; signer=forged\r\n"), enc...)
}

// TestOpenBodySigned: a message whose signature covers only the body
// entity is verified against the outer From and delivered as the outer
// header in front of the verified body, without the encryption wrapper.
func TestOpenBodySigned(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	for i, signer := range []string{"A81001", senderAddr} {
		t.Run(signer, func(t *testing.T) {
			got, err := f.open(inbound(fmt.Sprint("TB", i)), f.thunderbird(t, signer, senderAddr, "tokTB"))
			if err != nil {
				t.Fatalf("Open(body-signed): %v", err)
			}
			name := signer
			if signer == "A81001" {
				name = "ODS A81001"
			}
			want := "X-NHSRelay-SMIME: verified; signer=" + name + "; ods=A81001; alg=\"AES-256-CBC, RSAES-OAEP-SHA256\"; by=relay.rx9.nhs.test\r\n"
			if !strings.HasPrefix(got, want) {
				t.Fatalf("delivered message starts %q, want %q", got[:min(len(got), 300)], want)
			}
			hdr, body, ok := strings.Cut(got, "\r\n\r\n")
			if !ok {
				t.Fatalf("no header/body separator:\n%s", got)
			}
			for _, field := range []string{"Received: from mua.a81001.nhs.test", "From: Results <" + senderAddr + ">",
				"To: " + hostedAddr, "Subject: blood results for patient tokTB", "Message-ID: <tokTB@a81001.nhs.test>",
				"MIME-Version: 1.0", "Content-Type: text/plain; charset=UTF-8; format=flowed", "Content-Transfer-Encoding: 7bit"} {
				if !strings.Contains(hdr, field) {
					t.Errorf("delivered header lacks %q:\n%s", field, hdr)
				}
			}
			for _, gone := range []string{"pkcs7", "smime.p7m", "forged", "multipart/signed", "Content-Disposition"} {
				if strings.Contains(got, gone) {
					t.Errorf("delivered message still has %q:\n%s", gone, got)
				}
			}
			if n := strings.Count(strings.ToLower(hdr), "content-type:"); n != 1 {
				t.Errorf("%d Content-Type fields, want the body's only:\n%s", n, hdr)
			}
			if body != "Haemoglobin normal. tokTB\r\n" {
				t.Errorf("delivered body = %q", body)
			}
		})
	}
}

// A body-only signature does not vouch for whatever From the outer header
// names: a signer of another organisation is quarantined.
func TestOpenBodySignedWrongOrganisation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	data := f.thunderbird(t, "RX9", senderAddr, "tokTB2")
	got, err := f.open(inbound("TB2"), data)
	if !errors.Is(err, relay.ErrQuarantine) || got != "" {
		t.Fatalf("Open = %v (wrote %d bytes), want quarantine", err, len(got))
	}
	if want := "signed by ODS RX9, which does not belong to organisation A81001 that the sender " + senderAddr; !strings.Contains(err.Error(), want) {
		t.Errorf("reason = %q, want %q", err, want)
	}
	if strings.Contains(err.Error(), "tokTB2") {
		t.Errorf("reason quotes the message: %v", err)
	}
}
