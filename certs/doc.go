// Package certs holds nhsrelay's keys and certificates: a development CA that
// issues TLS and S/MIME certificates, loading of PEM keys and chains, a TLS
// certificate Reloader (SIGHUP and file change, without dropping
// connections), the key-strength policy, S/MIME chain validation against
// trust anchors kept apart from the TLS roots, and the expiry report behind
// `nhsrelay certs status`.
//
// Standards: X.509 profile RFC 5280; S/MIME certificate handling RFC 8550
// (§4.4.2 key usage, §4.4.4 extended key usage, §3 rfc822Name in the
// subjectAltName); TLS 1.2+ only (RFC 8996 retires 1.0/1.1), AEAD suites
// (RFC 9325 §4.2).
//
// Main types and functions:
//   - CA: InitCA, LoadCA, (*CA).IssueTLS, (*CA).IssueSMIME (RSA-3072 for an
//     address; ECDSA P-256, signing only, for an ODS code),
//     (*CA).IssueSMIMEKey (the caller's key).
//   - KeyPair, LoadKeyPair, LoadPool: PEM certificates and PKCS#1, PKCS#8 and
//     SEC1 keys.
//   - CheckKey: RSA < 2048 bits and EC < P-256 are refused, as NCSC Mail
//     Check flags them.
//   - Trust (Roots, OrgCAs, CRLs), (*Trust).ValidateSMIME and
//     *CertificateError: chain, validity, usage, key and revocation checks
//     whose text an operator acts on; ValidateSMIME is the same against a
//     bare pool, without revocation.
//   - LoadCRLs, CRLSet: RFC 5280 §5 CRLs, believed only if signed by the
//     issuing CA of the chain being validated; a stale CRL fails closed.
//   - (*Trust).Organisation: the ODS code a certificate speaks for, only
//     from an NHS organisation CA (Trust.OrgCAs).
//   - Reloader: tls.Config.GetCertificate that swaps the pair atomically.
//   - Status, Inspect: days left per certificate, warning at WarnDays.
//
// Organisation certificates. An S/MIME certificate for an organisation
// rather than a mailbox carries its NHS ODS code in the subject
// serialNumber attribute (2.5.4.5) and as OU "ODS:<code>"; ODSCode reads
// that claim back, and Trust.Organisation honours it only for a
// certificate chaining to one of Trust.OrgCAs, since any CA can write such
// a subject. Mailbox certificates carry the address as an rfc822Name SAN
// (RFC 8550 §3); Addresses reads them.
package certs
