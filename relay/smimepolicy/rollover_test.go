package smimepolicy_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nhsrelay/certs/certstest"
	"nhsrelay/relay"
)

// SetCertificates makes dir a smimepolicy.Publisher.
func (d *dir) SetCertificates(_ context.Context, id string, ders [][]byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, ep := range d.eps {
		if ep.ID == id {
			ep.Certificates = ders
			d.eps[k] = ep
			return nil
		}
	}
	return errors.New("no endpoint " + id)
}

// TestKeyRollover: a hosted endpoint gets a second key pair (a renewal) in
// KeysDir/<address>/. The newer valid pair becomes current and is
// published in the directory; a message openssl encrypted to the old
// certificate before the sender saw the new one still opens (audited as
// an old key used), as does one to the new certificate; once the old pair
// is removed, mail to the old certificate can no longer be read.
func TestKeyRollover(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	oldCert := f.hostedCert()
	newDir := filepath.Join(f.keys, hostedAddr)
	if err := os.MkdirAll(newDir, 0o700); err != nil {
		t.Fatal(err)
	}
	key := rsaKey(t, 2048)
	tmpl := mailboxTemplate(hostedAddr)
	tmpl.NotBefore = time.Now().Add(-10 * time.Minute) // newer than the old pair (an hour ago)
	newCert := f.ca.Issue(t, tmpl, key.Public())
	f.writePair(newDir, "2026-12", newCert, key)
	oldFile := filepath.Join(f.keys, hostedAddr+".crt")

	keys := f.p.EndpointKeys()
	var current, older []string
	for _, k := range keys {
		if k.Address != hostedAddr {
			continue
		}
		if k.Current {
			current = append(current, k.File)
		} else {
			older = append(older, k.File)
		}
	}
	if len(current) != 1 || current[0] != filepath.Join(newDir, "2026-12.crt") || len(older) != 1 || older[0] != oldFile {
		t.Fatalf("EndpointKeys for %s: current %v, older %v; want the renewal current, the old pair older", hostedAddr, current, older)
	}

	changed, err := f.p.PublishKeys(t.Context(), f.dir)
	if err != nil || len(changed) != 1 || changed[0] != hostedAddr {
		t.Fatalf("PublishKeys = %v, %v; want %s published", changed, err, hostedAddr)
	}
	if got := f.dir.get(hostedAddr).Certificates[0]; string(got) != string(newCert.Raw) {
		t.Errorf("directory certificate after PublishKeys is not the renewal")
	}
	if evs := f.audit.Find("smime.key_rollover"); len(evs) != 1 || !strings.Contains(evs[0].Detail, "older keys still decrypt") {
		t.Errorf("rollover events = %+v", evs)
	}
	if changed, _ := f.p.PublishKeys(t.Context(), f.dir); len(changed) != 0 {
		t.Errorf("second PublishKeys changed %v, want nothing", changed)
	}

	// openssl encrypts one message to the old certificate, one to the new.
	msgFile := filepath.Join(t.TempDir(), "msg.eml")
	os.WriteFile(msgFile, message(senderAddr, hostedAddr, "roll1"), 0o600)
	signed := certstest.OpenSSL(t, nil, "cms", "-sign", "-in", msgFile, "-signer", f.certFile["A81001"],
		"-inkey", filepath.Join(f.keys, "A81001.key"), "-md", "sha256")
	encTo := func(certFile string) []byte {
		return certstest.OpenSSL(t, signed, "cms", "-encrypt", "-aes256", "-recip", certFile, "-keyopt", "rsa_padding_mode:oaep",
			"-from", senderAddr, "-to", hostedAddr, "-subject", "Encrypted")
	}
	toOld, toNew := encTo(oldFile), encTo(filepath.Join(newDir, "2026-12.crt"))
	for name, msg := range map[string][]byte{"old": toOld, "new": toNew} {
		got, err := f.open(inbound("R-"+name), msg)
		if err != nil || !strings.Contains(got, "roll1") || !strings.HasPrefix(got, "X-NHSRelay-SMIME: verified;") {
			t.Fatalf("Open(encrypted to the %s certificate) = %v\n%s", name, err, got)
		}
	}
	evs := f.audit.Find("smime.old_key_used")
	if len(evs) != 1 || evs[0].QueueID != "R-old" || !strings.Contains(evs[0].Detail, oldCert.SerialNumber.Text(16)) {
		t.Errorf("old-key events = %+v, want one for the message to the old certificate", evs)
	}

	// The old pair removed: mail to the old certificate is refused.
	for _, ext := range []string{".crt", ".key"} {
		if err := os.Remove(filepath.Join(f.keys, hostedAddr+ext)); err != nil {
			t.Fatal(err)
		}
	}
	f.p.Reload()
	if _, err := f.open(inbound("R-gone"), toOld); !errors.Is(err, relay.ErrQuarantine) {
		t.Errorf("Open(old certificate) after its key was removed = %v, want quarantined", err)
	}
}
