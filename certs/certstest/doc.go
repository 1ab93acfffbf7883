// Package certstest makes throwaway certificate authorities and TLS configs
// for tests, as httptest does for servers. Nothing it makes is fit for
// production: keys are generated per test and never stored.
//
// Main types: CA (NewCA, then Issue, TLSCertificate, SMIMECertificate and
// CRL, an RFC 5280 §5 revocation list), ServerTLS for a loopback TLS
// server, WritePEM for the certificate files a config names, OpenSSL to
// check interoperability with the openssl command.
package certstest
