package smime_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nhsrelay/certs"
	"nhsrelay/certs/certstest"
	"nhsrelay/certs/smime"
)

// party is one S/MIME identity, in memory and as PEM files for openssl.
type party struct {
	kp                *certs.KeyPair
	certFile, keyFile string
}

func (p party) signer() smime.Signer {
	return smime.Signer{Cert: p.kp.Cert, Chain: p.kp.Chain, Key: p.kp.Key}
}

// world is a CA, a sending organisation and a receiving endpoint.
type world struct {
	dir       string
	ca        *certs.CA
	caFile    string
	roots     *certs.Trust // the CA, trusted for mailboxes and organisations
	sender    party        // organisation signing certificate, ODS A81001, ECDSA P-256 (as IssueSMIME makes it)
	senderRSA party        // the same organisation with an RSA-3072 signing certificate
	copy      party        // gp@a81001.nhs.test, RSA: receives the sender's own copy
	recipient party        // results@rrk.nhs.test
}

func newWorld(t testing.TB) *world {
	t.Helper()
	tca := certstest.NewCA(t)
	w := &world{dir: t.TempDir(), ca: &certs.CA{Cert: tca.Cert, Key: tca.Key}, roots: &certs.Trust{Roots: tca.Pool, OrgCAs: tca.Pool}}
	w.caFile = filepath.Join(w.dir, "ca.crt")
	certstest.WritePEM(t, w.caFile, tca.Cert)
	w.sender = w.issue(t, "A81001")
	w.recipient = w.issue(t, "results@rrk.nhs.test")
	w.copy = w.issue(t, "gp@a81001.nhs.test")
	key, err := rsa.GenerateKey(rand.Reader, 3072)
	if err != nil {
		t.Fatal(err)
	}
	w.senderRSA = w.issueKey(t, "A81001", "A81001-rsa", key)
	return w
}

func (w *world) issue(t testing.TB, subject string) party {
	t.Helper()
	certPEM, keyPEM, err := w.ca.IssueSMIME(subject)
	if err != nil {
		t.Fatalf("IssueSMIME(%q): %v", subject, err)
	}
	return w.write(t, subject, certPEM, keyPEM)
}

// issueKey issues for subject with key, written as file.
func (w *world) issueKey(t testing.TB, subject, file string, key crypto.Signer) party {
	t.Helper()
	certPEM, keyPEM, err := w.ca.IssueSMIMEKey(subject, key)
	if err != nil {
		t.Fatalf("IssueSMIMEKey(%q): %v", subject, err)
	}
	return w.write(t, file, certPEM, keyPEM)
}

func (w *world) write(t testing.TB, subject string, certPEM, keyPEM []byte) party {
	t.Helper()
	prefix := filepath.Join(w.dir, strings.NewReplacer("@", "_", ".", "_").Replace(subject))
	cf, kf, err := certs.WritePair(prefix, certPEM, keyPEM)
	if err != nil {
		t.Fatalf("WritePair: %v", err)
	}
	kp, err := certs.LoadKeyPair(cf, kf)
	if err != nil {
		t.Fatalf("LoadKeyPair: %v", err)
	}
	return party{kp: kp, certFile: cf, keyFile: kf}
}

// sample is a clinical message as a GP's mail client would submit it.
const sample = "From: gp@a81001.nhs.test\nTo: results@rrk.nhs.test\nSubject: Blood results for NHS 943 476 5919\n" +
	"Date: Mon, 2 Nov 2026 09:00:00 +0000\nMessage-ID: <1@a81001.nhs.test>\nMIME-Version: 1.0\n" +
	"Content-Type: text/plain; charset=utf-8\n\nHb 131 g/L. Please review.\n"

func (w *world) seal(t testing.TB, msg string, recipients ...*x509.Certificate) []byte {
	t.Helper()
	if len(recipients) == 0 {
		recipients = []*x509.Certificate{w.recipient.kp.Cert, w.copy.kp.Cert}
	}
	var out bytes.Buffer
	err := smime.Seal(&out, strings.NewReader(msg), w.sender.signer(), recipients, smime.OuterHeader{
		From: []string{"gp@a81001.nhs.test"}, To: []string{"results@rrk.nhs.test"},
		Date: time.Date(2026, 11, 2, 9, 0, 1, 0, time.UTC), MessageID: "<sealed-1@relay.nhs.test>",
	})
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return out.Bytes()
}

// opensslErr runs openssl as certstest.OpenSSL does, for tests that
// expect it to fail.
func opensslErr(stdin []byte, args ...string) ([]byte, error) {
	cmd := exec.Command("openssl", args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, &opensslError{err: err, stderr: stderr.String()}
	}
	return stdout.Bytes(), nil
}

type opensslError struct {
	err    error
	stderr string
}

func (e *opensslError) Error() string { return e.err.Error() + ": " + e.stderr }

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
