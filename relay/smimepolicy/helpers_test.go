package smimepolicy_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"nhsrelay/certs"
	"nhsrelay/certs/certstest"
	"nhsrelay/certs/smime"
	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
	"nhsrelay/relay/smimepolicy"
)

const (
	senderAddr = "results@a81001.nhs.test" // A81001's endpoint: sends and receives
	hostedAddr = "referrals@rx9.nhs.test"  // RX9's endpoint, hosted here
	remoteAddr = "ward7@rx9.nhs.test"      // RX9's endpoint on another relay
)

// dir is a fake directory: address or domain (lower case) → endpoint,
// and ODS code → organisation.
type dir struct {
	mu   sync.Mutex
	eps  map[string]directory.Endpoint
	orgs map[string]directory.Organisation
}

func (d *dir) putOrg(o directory.Organisation) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.orgs == nil {
		d.orgs = map[string]directory.Organisation{}
	}
	d.orgs[strings.ToUpper(o.ODS)] = o
}

func (d *dir) Organisation(_ context.Context, ods string) (directory.Organisation, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if o, ok := d.orgs[strings.ToUpper(ods)]; ok {
		return o, nil
	}
	return directory.Organisation{}, fmt.Errorf("organisation %s: %w", ods, directory.ErrNotFound)
}

func (d *dir) put(ep directory.Endpoint) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if ep.ID == "" {
		ep.ID = "ep-" + ep.Address
	}
	if ep.Status == "" {
		ep.Status = directory.StatusVerified
	}
	d.eps[strings.ToLower(ep.Address)] = ep
}

func (d *dir) get(addr string) directory.Endpoint {
	ep, _ := d.Lookup(context.Background(), addr)
	return ep
}

// CheckRecipient is the relay's policy question: verified endpoints only.
func (d *dir) CheckRecipient(ctx context.Context, addr string) (directory.Endpoint, error) {
	ep, err := d.Lookup(ctx, addr)
	if err == nil && ep.Status != directory.StatusVerified {
		return directory.Endpoint{}, &directory.NotVerifiedError{Address: addr, Status: ep.Status, Reason: string(ep.Status)}
	}
	return ep, err
}

func (d *dir) Lookup(_ context.Context, addr string) (directory.Endpoint, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	a := strings.ToLower(addr)
	if ep, ok := d.eps[a]; ok {
		return ep, nil
	}
	if at := strings.LastIndexByte(a, '@'); at >= 0 {
		if ep, ok := d.eps[a[at+1:]]; ok {
			return ep, nil
		}
	}
	return directory.Endpoint{}, fmt.Errorf("lookup %s: %w", addr, directory.ErrNotFound)
}

type accounts map[string]directory.Account

func (a accounts) Account(_ context.Context, user string) (directory.Account, error) {
	if acct, ok := a[user]; ok {
		return acct, nil
	}
	return directory.Account{}, fmt.Errorf("account %s: %w", user, directory.ErrNotFound)
}

type fixture struct {
	t        testing.TB
	ca       *certstest.CA
	keys     string
	mail     string
	quar     string
	dir      *dir
	audit    *directorytest.AuditLog
	p        *smimepolicy.Policy
	cfg      smimepolicy.Config
	certFile map[string]string // key name → .crt path, for openssl
}

// newFixture has organisations A81001 (sender, account "gp") and RX9, each
// with a signing pair in KeysDir, and three endpoints with certificates:
// senderAddr (A81001), hostedAddr (RX9, hosted here, key in KeysDir) and
// remoteAddr (RX9, elsewhere; its key pair is written beside, not in
// KeysDir, for openssl).
func newFixture(t testing.TB, edit func(*smimepolicy.Config)) *fixture {
	t.Helper()
	tmp := t.TempDir()
	f := &fixture{t: t, ca: certstest.NewCA(t), keys: filepath.Join(tmp, "keys"), mail: filepath.Join(tmp, "mail"),
		quar: filepath.Join(tmp, "quarantine"), dir: &dir{eps: map[string]directory.Endpoint{}}, audit: &directorytest.AuditLog{},
		certFile: map[string]string{}}
	if err := os.MkdirAll(f.keys, 0o700); err != nil {
		t.Fatal(err)
	}
	f.orgPair("A81001")
	f.orgPair("RX9")
	f.dir.putOrg(directory.Organisation{ODS: "A81001", Name: "Riverside Surgery", Status: directory.OrgActive})
	f.dir.putOrg(directory.Organisation{ODS: "RX9", Name: "Castle Hospital", Status: directory.OrgActive})
	f.dir.put(directory.Endpoint{Address: senderAddr, ODS: "A81001", NextHop: directory.NextHop{Kind: directory.HopMX},
		Certificates: [][]byte{f.mailboxPair(f.keys, senderAddr).Raw}})
	f.dir.put(directory.Endpoint{Address: hostedAddr, ODS: "RX9", NextHop: directory.NextHop{Kind: directory.HopHosted},
		Certificates: [][]byte{f.mailboxPair(f.keys, hostedAddr).Raw}, Contacts: []string{"it@rx9.nhs.test"}})
	f.dir.put(directory.Endpoint{Address: remoteAddr, ODS: "RX9", NextHop: directory.NextHop{Kind: directory.HopMX},
		Certificates: [][]byte{f.mailboxPair(tmp, remoteAddr).Raw}})
	key := make([]byte, 32)
	rand.Read(key)
	f.cfg = smimepolicy.Config{
		Hostname: "relay.rx9.nhs.test", KeysDir: f.keys, Trust: &certs.Trust{Roots: f.ca.Pool, OrgCAs: f.ca.Pool}, Directory: f.dir,
		Accounts:      accounts{"gp": {Username: "gp", ODS: "A81001", Addresses: []string{senderAddr}}},
		RelayODS:      "RX9",
		QuarantineDir: f.quar, QuarantineKey: key, MaildirRoot: f.mail,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)), Audit: f.audit,
	}
	if edit != nil {
		edit(&f.cfg)
	}
	p, err := smimepolicy.New(f.cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.p = p
	return f
}

// with is f with a second Policy made from f's config after edit: the
// same keys, directory, audit log and quarantine.
func (f *fixture) with(t testing.TB, edit func(*smimepolicy.Config)) *fixture {
	t.Helper()
	g := *f
	edit(&g.cfg)
	p, err := smimepolicy.New(g.cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	g.p = p
	return &g
}

func rsaKey(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// writePair writes dir/name.crt (cert then chain) and dir/name.key.
func (f *fixture) writePair(dir, name string, cert *x509.Certificate, key crypto.Signer) {
	f.t.Helper()
	var crt bytes.Buffer
	pem.Encode(&crt, &pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		f.t.Fatal(err)
	}
	base := filepath.Join(dir, name)
	if err := os.WriteFile(base+".crt", crt.Bytes(), 0o644); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(base+".key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		f.t.Fatal(err)
	}
	f.certFile[name] = base + ".crt"
}

// orgPair issues an organisation certificate (ODS code in the subject
// serialNumber) into KeysDir/<ods>.
func (f *fixture) orgPair(ods string) *x509.Certificate {
	f.t.Helper()
	key := rsaKey(f.t, 2048)
	cert := f.ca.Issue(f.t, orgTemplate(ods), key.Public())
	f.writePair(f.keys, ods, cert, key)
	return cert
}

// orgTemplate is an organisation certificate: ODS code, no address.
func orgTemplate(ods string) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: ods, SerialNumber: ods, OrganizationalUnit: []string{"ODS:" + ods}},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	}
}

// mailboxPair issues a mailbox certificate for addr into dir/<addr>.
func (f *fixture) mailboxPair(dir, addr string) *x509.Certificate {
	f.t.Helper()
	key := rsaKey(f.t, 2048)
	cert := f.ca.Issue(f.t, mailboxTemplate(addr), key.Public())
	f.writePair(dir, addr, cert, key)
	return cert
}

func mailboxTemplate(addr string) *x509.Certificate {
	return &x509.Certificate{
		Subject:        pkix.Name{CommonName: addr},
		EmailAddresses: []string{addr},
		KeyUsage:       x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	}
}

func (f *fixture) caFile() string {
	f.t.Helper()
	path := filepath.Join(f.t.TempDir(), "ca.pem")
	certstest.WritePEM(f.t, path, f.ca.Cert)
	return path
}

// signer loads a pair from KeysDir (or dir) as an smime.Signer.
func (f *fixture) signer(dir, name string) (smime.Signer, certs.KeyPair) {
	f.t.Helper()
	kp, err := certs.LoadKeyPair(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
	if err != nil {
		f.t.Fatal(err)
	}
	return smime.Signer{Cert: kp.Cert, Chain: kp.Chain, Key: kp.Key}, *kp
}

// message is a clinical-looking RFC 5322 message with a forged trace
// header inside.
func message(from, to, token string) []byte {
	return []byte("From: Results <" + from + ">\r\nTo: <" + to + ">\r\nSubject: blood results for patient " + token + "\r\n" +
		"X-NHSRelay-SMIME: verified; signer=forged\r\n" +
		"Date: Mon, 02 Mar 2026 09:00:00 +0000\r\nMessage-ID: <" + token + "@a81001.nhs.test>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nHaemoglobin normal. " + token + "\r\n")
}

// body is a relay.Body over bytes.
type body struct {
	*bytes.Reader
	data []byte
}

func newBody(data []byte) *body { return &body{Reader: bytes.NewReader(data), data: data} }

func (b *body) Reopen() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b.data)), nil }
