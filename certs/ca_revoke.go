package certs

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"nhsrelay/internal/durable"
)

// Files the development CA keeps beside ca.crt for revocation.
const (
	// CARevokedFile lists revoked serials, one line each:
	// "<serial hex> <RFC 3339 time> <reason words>".
	CARevokedFile = "revoked.txt"
	// CACRLNumberFile holds the last CRL number issued (RFC 5280 §5.2.3:
	// "monotonically increasing").
	CACRLNumberFile = "crlnumber"
	// CRLValidity is how long a development CRL stays current (its
	// nextUpdate): a reader refuses a stale list, so reissue before then.
	CRLValidity = 7 * 24 * time.Hour
)

// Revocation is one entry of the development CA's revoked list.
type Revocation struct {
	Serial *big.Int
	At     time.Time
	Reason string
}

// ErrAlreadyRevoked is returned by Revoke for a serial already listed.
var ErrAlreadyRevoked = errors.New("certs: certificate already revoked")

// Revoke records cert as revoked now, with reason, in the CA's
// revoked.txt (appended and fsynced). cert must have been issued by this
// CA. The change reaches relying parties only through a new CRL (see CRL).
func (ca *CA) Revoke(cert *x509.Certificate, reason string, now time.Time) (Revocation, error) {
	if ca.dir == "" {
		return Revocation{}, errors.New("certs: revoke: CA has no folder (made in memory)")
	}
	if err := cert.CheckSignatureFrom(ca.Cert); err != nil {
		return Revocation{}, fmt.Errorf("certs: revoke: certificate %s (serial %x) was not issued by this CA %q",
			cert.Subject.CommonName, cert.SerialNumber, ca.Cert.Subject.CommonName)
	}
	list, err := ca.Revocations()
	if err != nil {
		return Revocation{}, err
	}
	for _, r := range list {
		if r.Serial.Cmp(cert.SerialNumber) == 0 {
			return r, fmt.Errorf("%w: serial %x on %s", ErrAlreadyRevoked, r.Serial, r.At.UTC().Format(day))
		}
	}
	reason = strings.Join(strings.Fields(reason), " ") // one line
	r := Revocation{Serial: cert.SerialNumber, At: now.UTC().Truncate(time.Second), Reason: reason}
	f, err := os.OpenFile(filepath.Join(ca.dir, CARevokedFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return r, fmt.Errorf("certs: revoke: %w", err)
	}
	if _, err := fmt.Fprintf(f, "%x %s %s\n", r.Serial, r.At.Format(time.RFC3339), r.Reason); err != nil {
		f.Close()
		return r, fmt.Errorf("certs: revoke: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return r, fmt.Errorf("certs: revoke: fsync: %w", err)
	}
	return r, f.Close()
}

// Revocations reads the CA's revoked list; a CA that never revoked has none.
func (ca *CA) Revocations() ([]Revocation, error) {
	data, err := os.ReadFile(filepath.Join(ca.dir, CARevokedFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("certs: revoked list: %w", err)
	}
	var out []Revocation
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		fields := strings.SplitN(sc.Text(), " ", 3)
		if len(fields) < 2 {
			return nil, fmt.Errorf("certs: %s line %d: want \"SERIAL TIME REASON\"", CARevokedFile, n)
		}
		serial, ok := new(big.Int).SetString(fields[0], 16)
		at, err := time.Parse(time.RFC3339, fields[1])
		if !ok || err != nil {
			return nil, fmt.Errorf("certs: %s line %d: bad serial or time", CARevokedFile, n)
		}
		r := Revocation{Serial: serial, At: at}
		if len(fields) == 3 {
			r.Reason = fields[2]
		}
		out = append(out, r)
	}
	return out, nil
}

// CRL issues a PEM CRL (RFC 5280 §5) listing every revoked certificate,
// valid from now until now+CRLValidity, signed by the CA and carrying its
// key identifier (so readers match it to this CA and no other of the same
// name) and the next CRL number, which is recorded durably first so no two
// lists share one.
func (ca *CA) CRL(now time.Time) ([]byte, error) {
	list, err := ca.Revocations()
	if err != nil {
		return nil, err
	}
	number, err := ca.nextCRLNumber()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.RevocationList{Number: number, ThisUpdate: now.Add(-5 * time.Minute), NextUpdate: now.Add(CRLValidity)}
	if tmpl.NextUpdate.After(ca.Cert.NotAfter) {
		tmpl.NextUpdate = ca.Cert.NotAfter
	}
	for _, r := range list {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: r.Serial, RevocationTime: r.At})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("certs: CRL: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), nil
}

func (ca *CA) nextCRLNumber() (*big.Int, error) {
	if ca.dir == "" {
		return nil, errors.New("certs: CRL: CA has no folder (made in memory)")
	}
	path := filepath.Join(ca.dir, CACRLNumberFile)
	n := big.NewInt(0)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if _, ok := n.SetString(strings.TrimSpace(string(data)), 10); !ok {
			return nil, fmt.Errorf("certs: %s: not a number", path)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("certs: CRL number: %w", err)
	}
	n.Add(n, big.NewInt(1))
	if err := durable.WriteFile(path, []byte(n.String()+"\n")); err != nil {
		return nil, fmt.Errorf("certs: CRL number: %w", err)
	}
	return n, nil
}
