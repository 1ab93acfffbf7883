// Package smime signs and encrypts clinical messages, and decrypts and
// verifies them, as S/MIME 4.0 (RFC 8551) over CMS (RFC 5652).
//
// Outbound, Seal wraps the whole original RFC 5322 message as
// message/rfc822 (so its Subject and headers are protected, RFC 8551
// §3.1), signs it as multipart/signed with a detached SHA-256 SignedData,
// and encrypts that as application/pkcs7-mime; smime-type=enveloped-data
// to every recipient certificate. The outer header is neutral
// (NeutralSubject). Inbound, Open decrypts with an endpoint's key,
// verifies the signature and the signer's chain to the S/MIME trust
// anchors, and returns the original message with the signer; every failure
// is an *OpenError whose Kind is one of the package's sentinels and whose
// Reason a person can act on.
//
// Algorithms are fixed here, not taken from library defaults:
//
//	content encryption   AES-256-CBC (RFC 3565); AES-128/192-CBC and
//	                     AES-128/192/256-GCM AuthEnvelopedData accepted inbound
//	key transport        RSAES-OAEP, SHA-256, MGF1-SHA-256 (RFC 3560, RFC 8551 §2.3);
//	                     PKCS#1 v1.5 only when Sealer.LegacyKeyTransport says so
//	                     (the caller audits it); inbound also OAEP-SHA-1 (openssl's
//	                     default) and PKCS#1 v1.5 (decrypted per RFC 3218 §2.3.2)
//	digest / signature   SHA-256 with RSA PKCS#1 v1.5 or ECDSA (RFC 5754);
//	                     SHA-384/512 accepted inbound; a signature algorithm
//	                     naming a hash must name the digest algorithm's
//	refused              DES, 3DES, RC2, SHA-1 and MD5 digests, Ed25519 keys
//
// Signing keys. Seal signs with RSA (rsaEncryption, RFC 3370 §3.2) or
// ECDSA (ecdsa-with-SHA256, RFC 5753 and RFC 5754 §3.3, parameters
// absent); Open verifies both. Organisation signing certificates are
// ECDSA P-256 (certs.CA.IssueSMIME for an ODS code) because the relay signs
// every outbound message: a P-256 signature costs about a hundredth of an
// RSA-3072 one (RSA-3072 signing was 55% of the 6.7 ms of CPU a clinical
// message cost; see BENCHMARKS.md), and every reader of S/MIME 4.0 verifies it (RFC 8551 §2.2
// lists ECDSA with P-256 and SHA-256 as MUST for receiving agents;
// openssl cms -verify reads it, tested). Encryption certificates stay RSA
// (key transport, below): that is what mail clients and openssl cms
// interoperate on, and an ECDSA key cannot receive it.
//
// RFC 8551 §2.7 asks agents to read AES-GCM AuthEnvelopedData (RFC 5083,
// RFC 5084) as well as AES-CBC: Open reads both (openssl cms -encrypt
// -aes-256-gcm is tested). QUIRK: Seal writes AES-256-CBC only, because
// Outlook and older Thunderbird do not read AuthEnvelopedData, and the
// signature inside gives the integrity GCM would.
//
// EFAIL (CVE-2017-17689). CBC is malleable, so until a signature verifies,
// decrypted content is attacker-shaped. Every failure after decryption and
// before a signature verifies — bad padding, not signed, malformed MIME or
// CMS, unknown algorithm, digest or signature mismatch — is one
// ErrTampered with one fixed Reason, and no error text is ever built from
// the plaintext, so DSNs and quarantine records can neither echo it nor
// serve as a format oracle (see verify.go). Failures before decryption
// keep their own kinds: ErrNotEncrypted, ErrCannotDecrypt,
// ErrWeakAlgorithm.
//
// Trust. OpenWith takes a *certs.Trust: the signer must chain to its
// Roots and not be revoked by its CRLs, and Opened.SignerODSCode reports
// an organisation only for a certificate from one of its OrgCAs. Open,
// with a bare pool, is the deprecated form that trusts every anchor for
// organisations and checks no CRL.
//
// Limits. The BER reader charges every element its header, its content
// and a fixed node cost against a 4 MiB budget per structure, allows at
// most 4096 elements in one and 32 levels of nesting; encrypted content and
// opaque signed content are streamed past the budget, bounded by the
// message size the caller accepted.
//
// Why not github.com/smallstep/pkcs7: its algorithm choices are
// package-level variables (DES and SHA-1 by default; setting them races
// with any other user in the process), it needs the whole message in memory
// several times over, its Decrypt accepts DES/3DES and can panic on a bad
// CBC padding length, and its verification accepts any extended key usage.
// So this package writes and reads the few CMS structures it needs with
// encoding/asn1 and a small streaming BER reader (ber.go): Seal holds a few
// 64 KiB buffers whatever the message size (peak heap 2 MiB for 50 MB),
// and Open holds the plaintext once (peak heap ≈ the message size: 52 MiB
// for 50 MB), since nothing may be released before its signature checks.
// Both are measured by BenchmarkMemory50MB.
//
// Interoperability is tested against the openssl binary in both
// directions (openssl cms -decrypt/-verify read Seal's output; Open reads
// openssl cms -sign | openssl cms -encrypt, PKCS#1 v1.5 and OAEP).
//
// Files: seal.go (Seal, Sealer, Signer, OuterHeader), envelope.go
// (streaming EnvelopedData), sign.go (detached SignedData), open.go (Open,
// OpenWith, Opened, opaque signed-data), decrypt.go (EnvelopedData and
// AuthEnvelopedData, key transport), verify.go (SignedData verification),
// mime.go (multipart/signed splitting), ber.go (BER), errors.go
// (OpenError and sentinels).
package smime
