package certs_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nhsrelay/certs"
	"nhsrelay/certs/certstest"
)

func TestInitLoadCA(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	ca, err := certs.InitCA(dir, "test CA")
	if err != nil {
		t.Fatalf("InitCA: %v", err)
	}
	if _, err := certs.InitCA(dir, "again"); !errors.Is(err, certs.ErrCAExists) {
		t.Errorf("second InitCA error = %v, want ErrCAExists", err)
	}
	fi, err := os.Stat(filepath.Join(dir, certs.CAKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("ca.key mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	loaded, err := certs.LoadCA(dir)
	if err != nil {
		t.Fatalf("LoadCA: %v", err)
	}
	if !loaded.Cert.Equal(ca.Cert) || !loaded.Cert.IsCA {
		t.Errorf("LoadCA returned a different certificate")
	}
	// openssl agrees the CA is a CA.
	out, err := exec.Command("openssl", "x509", "-in", filepath.Join(dir, certs.CACertFile), "-noout", "-ext", "basicConstraints").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "CA:TRUE") {
		t.Errorf("openssl x509: %s %v", out, err)
	}
}

func newCA(t *testing.T) (*certs.CA, *x509.CertPool, string) {
	t.Helper()
	dir := t.TempDir()
	ca, err := certs.InitCA(dir, "test CA")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return ca, pool, filepath.Join(dir, certs.CACertFile)
}

func TestIssueSMIME(t *testing.T) {
	t.Parallel()
	ca, pool, caFile := newCA(t)
	rsaOrg, err := rsa.GenerateKey(rand.Reader, 3072)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		subject, name, ods string
		key                crypto.Signer // nil: IssueSMIME chooses
		keyType            string
		encrypts           bool
	}{
		{"Results@RRK.nhs.test", "results@rrk.nhs.test", "", nil, "RSA-3072", true},
		// Organisation signing: P-256 (cheap to sign with), signing only.
		{"a81001", "ODS A81001", "A81001", nil, "ECDSA-P256", false},
		// An RSA organisation certificate still issues, and can also
		// receive the organisation's sent copy.
		{"rx9", "ODS RX9", "RX9", rsaOrg, "RSA-3072", true},
	} {
		certPEM, keyPEM, err := ca.IssueSMIME(tc.subject)
		if tc.key != nil {
			certPEM, keyPEM, err = ca.IssueSMIMEKey(tc.subject, tc.key)
		}
		if err != nil {
			t.Fatalf("IssueSMIME(%q): %v", tc.subject, err)
		}
		kp, err := certs.ParseKeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatalf("ParseKeyPair: %v", err)
		}
		if got := certs.Name(kp.Cert); got != tc.name {
			t.Errorf("Name = %q, want %q", got, tc.name)
		}
		if code, ok := certs.ODSCode(kp.Cert); code != tc.ods || ok != (tc.ods != "") {
			t.Errorf("ODSCode = %q, %v, want %q", code, ok, tc.ods)
		}
		switch k := kp.Key.Public().(type) {
		case *rsa.PublicKey:
			if tc.keyType != "RSA-3072" || k.N.BitLen() != 3072 {
				t.Errorf("%s: key = RSA-%d, want %s", tc.subject, k.N.BitLen(), tc.keyType)
			}
		case *ecdsa.PublicKey:
			if tc.keyType != "ECDSA-P256" || k.Curve != elliptic.P256() {
				t.Errorf("%s: key = ECDSA %s, want %s", tc.subject, k.Curve.Params().Name, tc.keyType)
			}
		default:
			t.Errorf("%s: key = %T, want %s", tc.subject, k, tc.keyType)
		}
		if kp.Cert.KeyUsage&x509.KeyUsageDigitalSignature == 0 || kp.Cert.KeyUsage&x509.KeyUsageContentCommitment == 0 {
			t.Errorf("%s: KeyUsage %b lacks digitalSignature or nonRepudiation", tc.subject, kp.Cert.KeyUsage)
		}
		if err := certs.ValidateSMIME(kp.Cert, nil, pool, time.Now(), certs.Sign); err != nil {
			t.Errorf("ValidateSMIME(%s, signing) = %v", tc.subject, err)
		}
		err = certs.ValidateSMIME(kp.Cert, nil, pool, time.Now(), certs.Encrypt)
		if tc.encrypts && err != nil {
			t.Errorf("ValidateSMIME(%s, encryption) = %v", tc.subject, err)
		}
		if !tc.encrypts && !errors.Is(err, certs.ErrWrongUsage) {
			t.Errorf("ValidateSMIME(%s, encryption) = %v, want ErrWrongUsage (an ECDSA key cannot take RSA key transport)", tc.subject, err)
		}
		f := filepath.Join(t.TempDir(), "c.pem")
		os.WriteFile(f, certPEM, 0o644)
		purposes := []string{"smimesign"}
		if tc.encrypts {
			purposes = append(purposes, "smimeencrypt")
		}
		for _, purpose := range purposes {
			out, err := exec.Command("openssl", "verify", "-CAfile", caFile, "-purpose", purpose, f).CombinedOutput()
			if err != nil {
				t.Errorf("openssl verify %s -purpose %s: %s", tc.subject, purpose, out)
			}
		}
	}
	for _, bad := range []string{"", "not an address", "@x", "a@", "TOOLONGCODE1"} {
		if _, _, err := ca.IssueSMIME(bad); err == nil {
			t.Errorf("IssueSMIME(%q) = nil error", bad)
		}
	}
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.IssueSMIMEKey("A81001", weak); !errors.Is(err, certs.ErrWeakKey) {
		t.Errorf("IssueSMIMEKey(RSA-1024) = %v, want ErrWeakKey", err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.IssueSMIMEKey("A81001", p224); !errors.Is(err, certs.ErrWeakKey) {
		t.Errorf("IssueSMIMEKey(P-224) = %v, want ErrWeakKey", err)
	}
}

func TestValidateSMIMEErrors(t *testing.T) {
	t.Parallel()
	ca := certstest.NewCA(t)
	other := certstest.NewCA(t)
	good, _ := ca.SMIMECertificate(t, "results@a81001.nhs.test")
	expiry := time.Date(2026, 10, 1, 12, 0, 0, 0, time.UTC)
	rsaKey := func(bits int) *rsa.PublicKey {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		return &k.PublicKey
	}
	issue := func(email string, edit func(*x509.Certificate), pub any) *x509.Certificate {
		tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: email}, EmailAddresses: []string{email},
			KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}
		if edit != nil {
			edit(tmpl)
		}
		return ca.Issue(t, tmpl, pub)
	}
	expired := issue("results@a81001.nhs.test", func(c *x509.Certificate) {
		c.NotBefore, c.NotAfter = expiry.Add(-48*time.Hour), expiry
	}, rsaKey(2048))
	ec, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, tc := range []struct {
		name    string
		cert    *x509.Certificate
		roots   *x509.CertPool
		now     time.Time
		purpose certs.Purpose
		want    error
		text    string
	}{
		{"expired", expired, ca.Pool, expiry.Add(time.Hour), certs.Encrypt, certs.ErrExpired, "certificate for results@a81001.nhs.test expired on 2026-10-01"},
		{"not yet valid", good, ca.Pool, good.NotBefore.Add(-time.Minute), certs.Encrypt, certs.ErrNotYetValid, "not yet valid until"},
		{"untrusted", good, other.Pool, time.Now(), certs.Encrypt, certs.ErrUntrusted, "not issued by a trusted NHS CA"},
		{"no trust anchors", good, nil, time.Now(), certs.Sign, certs.ErrUntrusted, "no S/MIME trust anchors"},
		{"no EKU", issue("x@a.nhs.test", func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} }, rsaKey(2048)),
			ca.Pool, time.Now(), certs.Encrypt, certs.ErrWrongUsage, "lacks the emailProtection usage"},
		{"sign-only for encryption", issue("x@a.nhs.test", func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageDigitalSignature }, rsaKey(2048)),
			ca.Pool, time.Now(), certs.Encrypt, certs.ErrWrongUsage, "keyEncipherment"},
		{"encrypt-only for signing", issue("x@a.nhs.test", func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageKeyEncipherment }, rsaKey(2048)),
			ca.Pool, time.Now(), certs.Sign, certs.ErrWrongUsage, "digitalSignature"},
		{"EC for encryption", issue("x@a.nhs.test", nil, p256.Public()), ca.Pool, time.Now(), certs.Encrypt, certs.ErrWrongUsage, "EC P-256 key"},
		{"RSA-1024", issue("weak@a.nhs.test", nil, rsaKey(1024)), ca.Pool, time.Now(), certs.Sign, certs.ErrWeakKey, "key too weak: RSA 1024 bits"},
		{"P-224", issue("weak@a.nhs.test", nil, ec.Public()), ca.Pool, time.Now(), certs.Sign, certs.ErrWeakKey, "key too weak: EC 224 bits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := certs.ValidateSMIME(tc.cert, nil, tc.roots, tc.now, tc.purpose)
			var ce *certs.CertificateError
			if !errors.Is(err, tc.want) || !errors.As(err, &ce) {
				t.Fatalf("ValidateSMIME = %v, want %v as *CertificateError", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("ValidateSMIME = %q, want it to say %q", err, tc.text)
			}
		})
	}
	if err := certs.ValidateSMIME(issue("ok@a.nhs.test", nil, p256.Public()), nil, ca.Pool, time.Now(), certs.Sign); err != nil {
		t.Errorf("P-256 signing certificate: %v", err)
	}
}

func TestCheckKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		gen  func() any
		ok   bool
	}{
		{"RSA-2048", func() any { k, _ := rsa.GenerateKey(rand.Reader, 2048); return k.Public() }, true},
		{"RSA-1024", func() any { k, _ := rsa.GenerateKey(rand.Reader, 1024); return k.Public() }, false},
		{"P-256", func() any { k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); return k.Public() }, true},
		{"P-224", func() any { k, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader); return k.Public() }, false},
		{"unknown", func() any { return "key" }, false},
	} {
		err := certs.CheckKey(tc.gen())
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, certs.ErrWeakKey)) {
			t.Errorf("CheckKey(%s) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// TestLoadKeyPairFormats: PKCS#1, PKCS#8 and SEC1 keys made by openssl load;
// a mismatched or weak key is refused.
func TestLoadKeyPairFormats(t *testing.T) {
	t.Parallel()
	ca, pool, caFile := newCA(t)
	dir := t.TempDir()
	certPEM, keyPEM, err := ca.IssueSMIME("gp@a81001.nhs.test")
	if err != nil {
		t.Fatal(err)
	}
	tlsCert, tlsKey, err := ca.IssueTLS([]string{"mx.nhs.test"})
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	smimeCrt, smimeKey := write("s.crt", append(certPEM, mustRead(t, caFile)...)), write("s.key", keyPEM)
	tlsCrt, tlsKeyFile := write("t.crt", tlsCert), write("t.key", tlsKey)
	convert := func(in, out string, args ...string) string {
		p := filepath.Join(dir, out)
		cmd := exec.Command("openssl", append(args, "-in", in, "-out", p)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %s", args, b)
		}
		return p
	}
	pkcs1 := convert(smimeKey, "pkcs1.key", "rsa", "-traditional")
	sec1 := convert(tlsKeyFile, "sec1.key", "ec")
	for name, tc := range map[string][2]string{
		"PKCS#8 RSA": {smimeCrt, smimeKey}, "PKCS#1": {smimeCrt, pkcs1},
		"PKCS#8 EC": {tlsCrt, tlsKeyFile}, "SEC1": {tlsCrt, sec1},
	} {
		kp, err := certs.LoadKeyPair(tc[0], tc[1])
		if err != nil {
			t.Errorf("LoadKeyPair(%s): %v", name, err)
			continue
		}
		if name == "PKCS#1" && (len(kp.Chain) != 1 || !kp.Chain[0].IsCA) {
			t.Errorf("LoadKeyPair(%s): chain = %d certificates, want the CA", name, len(kp.Chain))
		}
	}
	if _, err := certs.LoadKeyPair(smimeCrt, tlsKeyFile); !errors.Is(err, certs.ErrKeyMismatch) {
		t.Errorf("mismatched pair: %v, want ErrKeyMismatch", err)
	}
	if _, err := certs.LoadKeyPair(filepath.Join(dir, "missing.crt"), smimeKey); err == nil {
		t.Error("missing file: nil error")
	}
	p, err := certs.LoadPool(caFile)
	if err != nil || !p.Equal(pool) {
		t.Errorf("LoadPool = %v, want the CA", err)
	}
	if _, err := certs.LoadPool(smimeKey); !errors.Is(err, certs.ErrNoCertificate) {
		t.Errorf("LoadPool(key file) = %v, want ErrNoCertificate", err)
	}
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	weakCert := (&certstest.CA{Cert: ca.Cert, Key: ca.Key}).Issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "weak"}}, weak.Public())
	_, err = certs.ParseKeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: weakCert.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(weak)}))
	if !errors.Is(err, certs.ErrWeakKey) {
		t.Errorf("weak key pair: %v, want ErrWeakKey", err)
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStatus(t *testing.T) {
	t.Parallel()
	ca := certstest.NewCA(t)
	now := time.Now()
	soon := ca.Issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "soon"}, NotAfter: now.Add(10*24*time.Hour - time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, mustEC(t))
	fine := ca.Issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "fine"}, NotAfter: now.Add(200 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}, mustEC(t))
	f := filepath.Join(t.TempDir(), "all.pem")
	certstest.WritePEM(t, f, soon, fine, ca.Cert)
	list, err := certs.Status(now, f)
	if err != nil || len(list) != 3 {
		t.Fatalf("Status = %d entries, %v; want 3", len(list), err)
	}
	if s := list[0]; s.Role != "TLS" || s.DaysLeft != 9 || !strings.Contains(s.Warning, "expires in 9 days") {
		t.Errorf("soon: %+v", s)
	}
	if s := list[1]; s.Role != "S/MIME signing" || s.Warning != "" {
		t.Errorf("fine: %+v", s)
	}
	if s := list[2]; s.Role != "CA" || s.Warning != "expires in 0 days ("+ca.Cert.NotAfter.UTC().Format("2006-01-02")+"): renew it" {
		t.Errorf("CA: %+v", s)
	}
	if s := certs.Inspect(soon, soon.NotAfter.Add(49*time.Hour)); s.DaysLeft != -3 || !strings.HasPrefix(s.Warning, "EXPIRED on") {
		t.Errorf("expired: %+v", s)
	}
}

func mustEC(t *testing.T) any {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}
