// Package dkim signs notice mail with DKIM (RFC 6376) as the relay sends
// it (it is the relay's NoticeSigner), with RSA-2048+ (rsa-sha256) or
// Ed25519 (ed25519-sha256, RFC 8463) keys, one per From: domain, and
// makes keys and the DNS TXT record that publishes them.
package dkim

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"os"
	"strings"

	"github.com/emersion/go-msgauth/dkim"

	"nhsrelay/relay/queue"
)

// Key is one signing key: d= Domain, s= Selector.
type Key struct {
	Domain   string
	Selector string
	Signer   crypto.Signer // *rsa.PrivateKey (2048 bits or more) or ed25519.PrivateKey
}

// Signer signs with the key of each message's From: domain.
type Signer struct {
	keys map[string]Key // by lower-case domain
}

// signedHeaders are the fields signed (RFC 6376 §5.4.1: From is required;
// the others are those a forger would want to change).
var signedHeaders = []string{"From", "Reply-To", "Subject", "Date", "To", "Cc", "Message-ID",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Auto-Submitted"}

// MaxMessageBytes is the largest message signed; notices are small.
const MaxMessageBytes = 10 << 20

// ErrNoKey means the message's From: domain has no DKIM key here.
var ErrNoKey = errors.New("dkim: no signing key for the From: domain")

// New checks the keys and returns a Signer.
func New(keys []Key) (*Signer, error) {
	s := &Signer{keys: map[string]Key{}}
	for _, k := range keys {
		if err := checkKey(k.Signer); err != nil {
			return nil, fmt.Errorf("dkim: key for %s: %w", k.Domain, err)
		}
		if k.Domain == "" || k.Selector == "" {
			return nil, errors.New("dkim: a key needs a domain and a selector")
		}
		s.keys[strings.ToLower(k.Domain)] = k
	}
	return s, nil
}

func checkKey(k crypto.Signer) error {
	switch k := k.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits; at least 2048 are needed (RFC 8301 §3.2)", k.N.BitLen())
		}
	case ed25519.PrivateKey:
	default:
		return fmt.Errorf("key type %T; want RSA or Ed25519", k)
	}
	return nil
}

// Sign reads a message and writes it with a DKIM-Signature field first.
// It implements relay.NoticeSigner.
func (s *Signer) Sign(_ context.Context, _ queue.Message, body io.Reader, w io.Writer) error {
	msg, err := io.ReadAll(io.LimitReader(body, MaxMessageBytes+1))
	if err != nil {
		return err
	}
	if len(msg) > MaxMessageBytes {
		return fmt.Errorf("dkim: message larger than %d bytes", MaxMessageBytes)
	}
	return s.SignBytes(w, msg)
}

// SignBytes signs msg.
func (s *Signer) SignBytes(w io.Writer, msg []byte) error {
	domain, err := fromDomain(msg)
	if err != nil {
		return err
	}
	k, ok := s.keys[domain]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoKey, domain)
	}
	opts := &dkim.SignOptions{Domain: k.Domain, Selector: k.Selector, Signer: k.Signer,
		HeaderKeys: signedHeaders, HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization: dkim.CanonicalizationRelaxed}
	return dkim.Sign(w, bytes.NewReader(msg), opts)
}

// fromDomain is the domain of the message's From: address.
func fromDomain(msg []byte) (string, error) {
	m, err := mail.ReadMessage(bufio.NewReader(bytes.NewReader(msg)))
	if err != nil {
		return "", fmt.Errorf("dkim: read header: %w", err)
	}
	a, err := mail.ParseAddress(m.Header.Get("From"))
	if err != nil {
		return "", fmt.Errorf("dkim: From: %w", err)
	}
	_, d, _ := strings.Cut(a.Address, "@")
	return strings.ToLower(d), nil
}

// GenerateKey makes a key of kind "rsa" (2048 bits) or "ed25519".
func GenerateKey(kind string) (crypto.Signer, error) {
	switch kind {
	case "rsa", "":
		return rsa.GenerateKey(rand.Reader, 2048)
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("dkim: key kind %q: want rsa or ed25519", kind)
}

// MarshalKey is the key as PEM (PKCS #8).
func MarshalKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// LoadKey reads a PEM private key file (PKCS #8, or PKCS #1 RSA).
func LoadKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("dkim: %s: no PEM block", path)
	}
	if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
		return k, checkKey(k)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("dkim: %s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("dkim: %s: not a signing key", path)
	}
	return s, checkKey(s)
}

// TXTRecord is the DNS TXT record value that publishes k's public key at
// <selector>._domainkey.<domain> (RFC 6376 §3.6.1; Ed25519: RFC 8463 §4.2).
func TXTRecord(k crypto.Signer) (string, error) {
	switch pub := k.Public().(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return "", err
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub), nil
	}
	return "", fmt.Errorf("dkim: key type %T", k)
}
