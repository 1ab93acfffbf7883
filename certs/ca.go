package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names inside a CA directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// Validity of what the development CA issues.
const (
	CAValidity    = 10 * 365 * 24 * time.Hour
	TLSValidity   = 397 * 24 * time.Hour // the CA/Browser Forum ceiling
	SMIMEValidity = 825 * 24 * time.Hour
)

// ErrCAExists is returned by InitCA when the directory already holds a CA,
// so a second `certs init-ca` never overwrites the key every issued
// certificate depends on.
var ErrCAExists = errors.New("certs: CA already exists")

// CA is a development certificate authority kept as ca.crt and ca.key in
// one directory. It is for test and development deployments; production
// S/MIME certificates come from the NHS CA.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// Now is the clock for validity periods; nil means time.Now.
	Now func() time.Time
	// NotBefore, when set, starts the validity of what is issued (a
	// certificate not yet valid, for tests and planned rollovers);
	// otherwise it starts five minutes before Now.
	NotBefore time.Time
	// Validity, when set, replaces the default lifetime (TLSValidity,
	// SMIMEValidity) of what is issued: short-lived certificates.
	Validity time.Duration
	// dir is where LoadCA found the CA: revocations are kept beside it.
	dir string
}

// InitCA creates dir (0700) and a new CA in it named name, with a P-256
// key. It refuses to overwrite an existing CA.
func InitCA(dir, name string) (*CA, error) {
	if name == "" {
		name = "nhsrelay development CA"
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("certs: init CA: %w", err)
	}
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Stat(p); err == nil {
			return nil, fmt.Errorf("%w: %s", ErrCAExists, p)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: init CA: key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"nhsrelay development"}},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.Add(CAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          keyID(key.Public()),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("certs: init CA: sign: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: init CA: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	if err := writeFile(keyPath, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, dir: dir}, nil
}

// LoadCA reads the CA in dir.
func LoadCA(dir string) (*CA, error) {
	kp, err := LoadKeyPair(filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("certs: load CA: %w", err)
	}
	if !kp.Cert.IsCA {
		return nil, fmt.Errorf("certs: load CA: %s is not a CA certificate", filepath.Join(dir, CACertFile))
	}
	return &CA{Cert: kp.Cert, Key: kp.Key, dir: dir}, nil
}

// IssueTLS issues a TLS certificate with a new P-256 key for hosts (DNS
// names or IP addresses), usable as server and client (relay to relay).
func (ca *CA) IssueTLS(hosts []string) (certPEM, keyPEM []byte, err error) {
	if len(hosts) == 0 {
		return nil, nil, errors.New("certs: issue TLS: no host names")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: issue TLS: key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0]},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, strings.ToLower(h))
		}
	}
	return ca.issue(tmpl, key, TLSValidity)
}

// IssueSMIME issues an S/MIME certificate for subject with a new key.
// subject is either a mail address, which goes in an rfc822Name SAN (RFC
// 8550 §3), or an ODS code for an organisation certificate, which goes in
// the subject serialNumber and as OU "ODS:<code>" (see ODSCode).
//
// An address gets RSA-3072, for signing and for receiving encrypted mail
// (RFC 8550 §4.4.2: digitalSignature and keyEncipherment, as RSA key
// transport is what mail clients and openssl cms interoperate on). An ODS
// code gets ECDSA P-256, for signing only: the relay signs every message
// with it, and a P-256 signature costs about a hundredth of an RSA-3072
// one while every S/MIME 4.0 reader verifies it (RFC 8551 §2.2: ECDSA with
// P-256 and SHA-256 is a MUST for receivers). IssueSMIMEKey issues with a
// key of the caller's choice (an RSA organisation certificate, which can
// also receive the organisation's sent copy).
func (ca *CA) IssueSMIME(subject string) (certPEM, keyPEM []byte, err error) {
	var key crypto.Signer
	if strings.Contains(subject, "@") {
		key, err = rsa.GenerateKey(rand.Reader, NewSMIMERSABits)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("certs: issue S/MIME: key: %w", err)
	}
	return ca.IssueSMIMEKey(subject, key)
}

// IssueSMIMEKey is IssueSMIME with the caller's key: RSA (at least
// MinRSABits) or ECDSA (P-256 or larger), as CheckSMIMEKey says. The key
// usages follow the key: an RSA certificate signs and receives encrypted
// mail (digitalSignature, nonRepudiation, keyEncipherment); an ECDSA one
// signs only (digitalSignature, nonRepudiation; RFC 8550 §4.4.2). Both
// carry the emailProtection EKU (RFC 8550 §4.4.4).
func (ca *CA) IssueSMIMEKey(subject string, key crypto.Signer) (certPEM, keyPEM []byte, err error) {
	subject = strings.TrimSpace(subject)
	if err := CheckSMIMEKey(key.Public()); err != nil {
		return nil, nil, fmt.Errorf("certs: issue S/MIME for %q: %w", subject, err)
	}
	tmpl := &x509.Certificate{
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	}
	if _, ok := key.Public().(*rsa.PublicKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	switch {
	case strings.Contains(subject, "@"):
		addr := strings.ToLower(subject)
		if local, domain, _ := strings.Cut(addr, "@"); local == "" || domain == "" || strings.ContainsAny(addr, " <>\"") {
			return nil, nil, fmt.Errorf("certs: issue S/MIME: %q is not a mail address", subject)
		}
		tmpl.Subject = pkix.Name{CommonName: addr}
		tmpl.EmailAddresses = []string{addr}
	case IsODSCode(strings.ToUpper(subject)):
		code := strings.ToUpper(subject)
		tmpl.Subject = pkix.Name{
			CommonName:         "ODS " + code + " organisation signing",
			OrganizationalUnit: []string{"ODS:" + code},
			SerialNumber:       code,
		}
	default:
		return nil, nil, fmt.Errorf("certs: issue S/MIME: %q is neither a mail address nor an ODS code (3–8 letters and digits)", subject)
	}
	return ca.issue(tmpl, key, SMIMEValidity)
}

func (ca *CA) issue(tmpl *x509.Certificate, key crypto.Signer, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	now := time.Now()
	if ca.Now != nil {
		now = ca.Now()
	}
	tmpl.SerialNumber = newSerial()
	if ca.Validity > 0 {
		validity = ca.Validity
	}
	tmpl.NotBefore = now.Add(-5 * time.Minute) // tolerate small clock skew
	tmpl.NotAfter = now.Add(validity)
	if !ca.NotBefore.IsZero() {
		tmpl.NotBefore, tmpl.NotAfter = ca.NotBefore, ca.NotBefore.Add(validity)
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	tmpl.BasicConstraintsValid = true
	tmpl.SubjectKeyId = keyID(key.Public())
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: issue %s: %w", tmpl.Subject.CommonName, err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// WritePair writes prefix.crt (0644) and prefix.key (0600), refusing to
// overwrite either, and returns their names.
func WritePair(prefix string, certPEM, keyPEM []byte) (certFile, keyFile string, err error) {
	certFile, keyFile = prefix+".crt", prefix+".key"
	for _, p := range []string{certFile, keyFile} {
		if _, err := os.Stat(p); err == nil {
			return "", "", fmt.Errorf("certs: %s already exists; remove it or choose another --out", p)
		}
	}
	if err := writeFile(keyFile, keyPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := writeFile(certFile, certPEM, 0o644); err != nil {
		os.Remove(keyFile)
		return "", "", err
	}
	return certFile, keyFile, nil
}

// writeFile creates name exclusively with mode and syncs it, so a key is
// never world-readable even for a moment and never half-written.
func writeFile(name string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("certs: create %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(name)
		return fmt.Errorf("certs: write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(name)
		return fmt.Errorf("certs: fsync %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("certs: close %s: %w", name, err)
	}
	return nil
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certs: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// keyID is the RFC 5280 §4.2.1.2 method (1) style identifier, with SHA-256
// truncated to 160 bits as RFC 7093 §2 allows.
func keyID(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	sum := sha256.Sum256(der)
	return sum[:20]
}

func newSerial() *big.Int {
	// RFC 5280 §4.1.2.2: positive, at most 20 octets; 127 random bits.
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("certs: crypto/rand failed: " + err.Error()) // crypto/rand never fails on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}
