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
//	content encryption   AES-256-CBC (RFC 3565); AES-128/192-CBC accepted inbound
//	key transport        RSAES-OAEP, SHA-256, MGF1-SHA-256 (RFC 3560, RFC 8551 §2.3);
//	                     PKCS#1 v1.5 only when Sealer.LegacyKeyTransport says so
//	                     (the caller audits it); inbound also OAEP-SHA-1 (openssl's
//	                     default) and PKCS#1 v1.5 (decrypted per RFC 3218 §2.3.2)
//	digest / signature   SHA-256 with RSA PKCS#1 v1.5 or ECDSA (RFC 5754);
//	                     SHA-384/512 accepted inbound
//	refused              DES, 3DES, RC2, SHA-1 and MD5 digests
//
// QUIRK: RFC 8551 §2.7 asks agents to support AES-GCM AuthEnvelopedData
// (RFC 5083) as well as AES-CBC. We produce AES-256-CBC only, because
// Outlook and Thunderbird do not read AuthEnvelopedData, and the
// signature inside gives the integrity GCM would; inbound AuthEnvelopedData
// is refused with ErrCannotDecrypt and a reason naming it. Because CBC is
// malleable, padding errors and garbled plaintext are reported exactly as a
// bad signature (ErrTampered), so replies cannot serve as an oracle.
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
// Opened), verify.go (SignedData verification), mime.go (multipart/signed
// splitting), ber.go (BER), errors.go (OpenError and sentinels).
package smime
