package certs

import (
	"crypto/x509"
	"fmt"
	"os"
)

// RootPool is the system roots plus the CAs in files (PEM), for verifying
// the TLS certificates of next hops. With no files it is nil: the caller
// uses the system roots. A file that cannot be read or holds no
// certificate is an error naming it.
func RootPool(files []string) (*x509.CertPool, error) {
	if len(files) == 0 {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		chain, err := ParseCertificates(data)
		if err != nil || len(chain) == 0 {
			return nil, fmt.Errorf("%s: no certificate (%v)", f, err)
		}
		for _, c := range chain {
			pool.AddCert(c)
		}
	}
	return pool, nil
}
