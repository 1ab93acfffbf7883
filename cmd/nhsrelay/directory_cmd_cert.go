package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"nhsrelay/certs"
	"nhsrelay/directory"
)

// directoryCertCheck is the directory's Config.CertCheck: the relay's own
// rule for an encryption certificate (certs.Trust.ValidateSMIME: anchors,
// usages, not a CA, not revoked), under the trust in force — current is
// read at each check, so a CRL SIGHUP loads counts here as in the relay —
// so that `directory check` and the expiry check say what the relay will
// do when it seals.
func directoryCertCheck(current func() *certs.Trust) directory.CertCheck {
	return func(c *x509.Certificate, intermediates []*x509.Certificate, now time.Time) error {
		return current().ValidateSMIME(c, intermediates, now, certs.Encrypt)
	}
}

// maxCertFile bounds a certificate file: a leaf and its chain are a few KiB.
const maxCertFile = 1 << 20

// readCertFiles reads S/MIME certificates for an endpoint: each file is
// PEM (one or more CERTIFICATE blocks, a leaf and its chain) or DER. A
// private key in a file is refused: it stays with the endpoint's owner.
func readCertFiles(paths []string) ([][]byte, error) {
	var out [][]byte
	for _, p := range paths {
		ders, err := readCertFile(p)
		if err != nil {
			return nil, err
		}
		out = append(out, ders...)
	}
	return out, nil
}

func readCertFile(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCertFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxCertFile {
		return nil, fmt.Errorf("%s: larger than %d bytes; give the certificate and its chain only", path, maxCertFile)
	}
	var ders [][]byte
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch {
		case strings.Contains(b.Type, "PRIVATE KEY"):
			return nil, fmt.Errorf("%s holds a private key: give only the certificate (and its chain); the key stays with the endpoint's owner", path)
		case b.Type != "CERTIFICATE":
			return nil, fmt.Errorf("%s: a PEM %q block, want CERTIFICATE", path, b.Type)
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", path, len(ders)+1, err)
		}
		ders = append(ders, b.Bytes)
	}
	if ders != nil {
		return ders, nil
	}
	cs, err := x509.ParseCertificates(data) // DER, one or more
	if err != nil || len(cs) == 0 {
		return nil, fmt.Errorf("%s: neither PEM CERTIFICATE blocks nor a DER certificate", path)
	}
	for _, c := range cs {
		ders = append(ders, c.Raw)
	}
	return ders, nil
}

// setCert replaces an endpoint's S/MIME certificates with those in the
// files (-none: removes them all).
func (d *dirCmd) setCert(ctx context.Context, args []string) error {
	files := args[1:]
	switch {
	case d.o.none && len(files) > 0:
		return errors.New("set-cert: give certificate files or -none, not both")
	case !d.o.none && len(files) == 0:
		return errors.New("set-cert: give certificate FILEs (PEM, may hold the chain), or -none to remove them all")
	}
	ders, err := readCertFiles(files)
	if err != nil {
		return fmt.Errorf("set-cert: %w", err)
	}
	if ders == nil {
		ders = [][]byte{}
	}
	e, err := d.resolve(ctx, args[0])
	if err != nil {
		return err
	}
	path := dirAPI + "/endpoints/" + url.PathEscape(e.ID) + "/certificates"
	e = directory.Endpoint{} // decode the answer afresh: empty fields are left out
	if err := d.c.do(ctx, http.MethodPut, path, map[string]any{"certificates": ders}, &e); err != nil {
		return err
	}
	if d.o.json {
		return d.printEndpoint(ctx, e)
	}
	fmt.Fprintf(d.out, "%s: %s: %d certificate(s) stored\n", e.ID, e.Address, len(e.Certificates))
	writeCertLines(d.out, e.Certificates)
	if len(e.Certificates) > 0 {
		fmt.Fprintf(d.out, "check them as the relay will: nhsrelay directory check %s\n", e.Address)
	}
	return nil
}

// writeCertLines names each certificate and its expiry, one a line.
func writeCertLines(w io.Writer, ders [][]byte) {
	for _, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			continue // the server parsed them; nothing to show otherwise
		}
		what := "certificate"
		if c.IsCA {
			what = "issuing CA "
		}
		fmt.Fprintf(w, "  %s %s, until %s\n", what, certs.Name(c), dirDay(c.NotAfter))
	}
}
