package smimepolicy_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nhsrelay/certs/certstest"
	"nhsrelay/directory"
	"nhsrelay/relay/queue"
)

// TestMDNRequestInsideTheSignature: a Thunderbird-style read-receipt
// request (RFC 8098 §2.1 Disposition-Notification-To) travels inside the
// signed, encrypted message — openssl finds it in the content it verified
// — and not in the outer header, which a relay on the way could change.
func TestMDNRequestInsideTheSignature(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	const dnt = "Disposition-Notification-To: GP surgery <" + senderAddr + ">"
	msg := message(senderAddr, remoteAddr, "mdn1")
	msg = bytes.Replace(msg, []byte("\r\n\r\n"), []byte("\r\n"+dnt+"\r\n\r\n"), 1)
	out, err := sealTo(t, f, queue.Message{ID: "Q1", From: senderAddr, Account: "gp"}, []directory.Endpoint{f.dir.get(remoteAddr)}, msg)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	outer, _, _ := strings.Cut(string(out), "\r\n\r\n")
	if strings.Contains(outer, "Disposition-Notification-To") {
		t.Errorf("the MDN request is in the outer header, outside the signature:\n%s", outer)
	}
	sealed := filepath.Join(t.TempDir(), "sealed.eml")
	if err := os.WriteFile(sealed, out, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(f.certFile[remoteAddr])
	dec := certstest.OpenSSL(t, nil, "cms", "-decrypt", "-in", sealed,
		"-recip", filepath.Join(dir, remoteAddr+".crt"), "-inkey", filepath.Join(dir, remoteAddr+".key"))
	plain := certstest.OpenSSL(t, dec, "cms", "-verify", "-CAfile", f.caFile(), "-purpose", "smimesign")
	if !bytes.Contains(plain, []byte(dnt)) {
		t.Errorf("the signed content lacks %q:\n%s", dnt, plain)
	}
}
