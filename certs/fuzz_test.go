package certs_test

import (
	"encoding/pem"
	"testing"
	"time"

	"nhsrelay/certs"
	"nhsrelay/certs/certstest"
)

// FuzzParseCRLs: PEM or DER, any bytes; never a panic, and what parses
// can be checked against a chain.
func FuzzParseCRLs(f *testing.F) {
	ca := certstest.NewCA(f)
	cert, _ := ca.SMIMECertificate(f, "results@a81001.nhs.test")
	der := ca.CRL(f, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), cert)
	f.Add(der)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}))
	f.Add(der[:len(der)/2])
	f.Add([]byte("-----BEGIN X509 CRL-----\n-----END X509 CRL-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lists, err := certs.ParseCRLs(data)
		if err != nil {
			return
		}
		trust := &certs.Trust{Roots: ca.Pool, CRLs: certs.NewCRLSet(lists...)}
		trust.ValidateSMIME(cert, nil, time.Now(), certs.Sign)
	})
}
