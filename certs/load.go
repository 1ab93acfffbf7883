package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// KeyPair is a certificate, the rest of its chain (issuer first, no root
// needed) and its private key.
type KeyPair struct {
	Cert  *x509.Certificate
	Chain []*x509.Certificate
	Key   crypto.Signer
}

// ErrNoCertificate and ErrKeyMismatch are wrapped by LoadKeyPair.
var (
	ErrNoCertificate = errors.New("certs: no CERTIFICATE block")
	ErrNoKey         = errors.New("certs: no private key block")
	ErrKeyMismatch   = errors.New("certs: private key does not match certificate")
)

// LoadKeyPair reads a PEM certificate file (leaf first, then its chain) and
// a PEM key file (PKCS#1 "RSA PRIVATE KEY", PKCS#8 "PRIVATE KEY" or SEC1
// "EC PRIVATE KEY"), checks that they match and that the key is strong
// enough (CheckKey).
func LoadKeyPair(certFile, keyFile string) (*KeyPair, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("certs: read certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("certs: read key: %w", err)
	}
	kp, err := ParseKeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w (%s, %s)", err, certFile, keyFile)
	}
	return kp, nil
}

// ParseKeyPair is LoadKeyPair on PEM bytes.
func ParseKeyPair(certPEM, keyPEM []byte) (*KeyPair, error) {
	chain, err := ParseCertificates(certPEM)
	if err != nil {
		return nil, err
	}
	key, err := ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if !publicKeysEqual(chain[0].PublicKey, key.Public()) {
		return nil, ErrKeyMismatch
	}
	if err := CheckKey(key.Public()); err != nil {
		return nil, err
	}
	return &KeyPair{Cert: chain[0], Chain: chain[1:], Key: key}, nil
}

// ParseCertificates returns every CERTIFICATE block in data, in order.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	out, err := pemBlocks(data, "CERTIFICATE", "certs: parse certificate", x509.ParseCertificate)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, ErrNoCertificate
	}
	return out, nil
}

// pemBlocks parses every PEM block of type typ in data with parse, in
// order, skipping blocks of other types. A parse error is wrapped as
// "what N: err", N counting blocks of type typ from 1.
func pemBlocks[T any](data []byte, typ, what string, parse func(der []byte) (T, error)) ([]T, error) {
	var out []T
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out, nil
		}
		if b.Type != typ {
			continue
		}
		v, err := parse(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s %d: %w", what, len(out)+1, err)
		}
		out = append(out, v)
	}
}

// ParsePrivateKey returns the first private key block in data: PKCS#1,
// PKCS#8 or SEC1. Encrypted PEM keys are refused (RFC 1423 encryption is
// weak); decrypt them with openssl first.
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, ErrNoKey
		}
		var key any
		var err error
		switch b.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("certs: encrypted private keys are not supported; decrypt with `openssl pkey`")
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("certs: parse %s: %w", b.Type, err)
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("certs: unsupported key type %T", key)
		}
		return s, nil
	}
}

// LoadPool reads PEM certificates from each file into a new pool, for trust
// anchors. A file without any certificate is an error, so a typo in a path
// list cannot silently trust nothing.
func LoadPool(files ...string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("certs: read trust anchors: %w", err)
		}
		certs, err := ParseCertificates(data)
		if err != nil {
			return nil, fmt.Errorf("certs: trust anchors in %s: %w", f, err)
		}
		for _, c := range certs {
			pool.AddCert(c)
		}
	}
	return pool, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	switch k := a.(type) {
	case *rsa.PublicKey:
		return k.Equal(b)
	case *ecdsa.PublicKey:
		return k.Equal(b)
	case ed25519.PublicKey:
		return k.Equal(b)
	}
	return false
}
