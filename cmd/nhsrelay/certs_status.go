package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"time"

	"nhsrelay/certs"
	"nhsrelay/directory"
)

// certsInUseStatus reports on every certificate the server configured at
// configPath uses (issue 5, `certs status`): the TLS chain and the S/MIME
// pairs read from their files, the way the daily expiry check finds them,
// and the endpoints' encryption certificates from the running server's
// directory. A server that is not running only costs the last part, which
// is said on stdout.
func certsInUseStatus(configPath string, stdout io.Writer, now time.Time) ([]certs.CertStatus, error) {
	cfg, err := loadConfig(configPath)
	if err != nil {
		return nil, err
	}
	tlsCert := func() *tls.Certificate {
		data, err := os.ReadFile(cfg.CertFile)
		if err != nil {
			return nil
		}
		chain, err := certs.ParseCertificates(data)
		if err != nil {
			return nil
		}
		c := &tls.Certificate{}
		for _, x := range chain {
			c.Certificate = append(c.Certificate, x.Raw)
		}
		return c
	}
	list, errs := certs.InUse(tlsCert, cfg.CertFile, cfg.SMIMEKeysDir, now)
	for _, err := range errs {
		fmt.Fprintf(stdout, "note: %v\n", err)
	}
	eps, err := directoryEndpoints(configPath)
	if err != nil {
		fmt.Fprintf(stdout, "note: endpoint certificates not listed: %v\n", err)
		return list, nil
	}
	for _, ep := range eps {
		for _, der := range ep.Certificates {
			x, err := x509.ParseCertificate(der)
			if err != nil {
				fmt.Fprintf(stdout, "note: endpoint %s: unreadable certificate: %v\n", ep.Address, err)
				continue
			}
			s := certs.Inspect(x, now)
			s.File, s.Role = "directory:"+ep.Address, "endpoint-encryption"
			if x.IsCA {
				s.Role = "endpoint-chain"
			}
			list = append(list, s)
		}
	}
	return list, nil
}

// directoryEndpoints asks the running server for every endpoint.
func directoryEndpoints(configPath string) ([]directory.Endpoint, error) {
	c, err := newAdminClient(configPath)
	if err != nil {
		return nil, err
	}
	var out struct {
		Endpoints []directory.Endpoint `json:"endpoints"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.do(ctx, "GET", "/v1/directory/endpoints", nil, &out); err != nil {
		return nil, err
	}
	return out.Endpoints, nil
}
