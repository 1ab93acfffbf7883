// Package smimepolicy is where the relay meets S/MIME (issue 5): which
// certificate a recipient gets, which key signs, what is held, what reaches
// a hosted mailbox and what is quarantined. The cryptography is in
// nhsrelay/certs/smime (RFC 8551 S/MIME 4.0 over RFC 5652 CMS); this
// package is policy. One Policy is both the relay's Sealer and its Opener:
//
//	p, err := smimepolicy.New(smimepolicy.Config{...})
//	relay.Config{..., Sealer: p.Sealer(), Opener: p.Opener()}
//	// on SIGHUP: p.Reload()
//
// Outbound (Seal, CheckRecipient). Each recipient endpoint's certificate
// comes from the directory (Endpoint.Certificates, DER, set only by an
// administrator): among those that name the endpoint (RFC 8550 §3: its
// address, or an address in its domain for a domain endpoint), the one
// valid for encryption now (certs.Trust.ValidateSMIME: validity, key
// strength, emailProtection, keyEncipherment, not a CA certificate, chain
// to the S/MIME trust anchors, not revoked by a loaded CRL) that lasts
// longest. A certificate naming only the endpoint's
// organisation (its ODS code) is never an encryption certificate for an
// endpoint, even when stored on it: whoever holds the organisation's key
// could otherwise read every endpoint of the organisation. Organisation
// certificates sign (and receive the organisation's own sent copy). A CA
// certificate stored beside the leaf is only an intermediate. None → a *HoldError wrapping relay.ErrHold whose
// text is exactly why ("certificate for results@a81001.nhs.test expired
// on 2026-10-01", "certificate for … was revoked on 2026-05-01"); nothing
// is sent, in clear or otherwise, and the relay
// tells the sender in a DSN. Because the Policy is a
// relay.RecipientChecker, the relay asks before grouping recipients by
// next hop, so one bad certificate holds only its own recipient.
//
// The message is signed (SHA-256) with the sending organisation's key —
// the ODS code of the authenticated account (Accounts), or RelayODS for
// mail without an account (the relay's DSNs, trusted networks) — and
// encrypted (AES-256-CBC, RSAES-OAEP-SHA-256) to every recipient plus the
// sending organisation's own certificate, so its sent copy stays readable.
// A signing key that is missing, unusable or not valid for signing holds
// the message with a reason saying so. The outer header shows only From,
// To (addresses), Date, Message-ID and a neutral Subject.
//
// Exceptions. An endpoint with TLSOnly (an administrator's exception,
// audited by the directory when set) is sent unchanged, over the relay's
// verified TLS; the relay gives TLS-only recipients a transaction of their
// own, and a TLS-only recipient that shares a Seal call with others is
// treated like any other (it needs a valid certificate). RSA PKCS#1 v1.5
// key transport is used only for endpoints listed in
// Config.LegacyKeyTransport: a certificate cannot say that its holder's
// client lacks OAEP, so only an administrator can; each use is audited.
//
// Hosted endpoints. With an Opener configured the relay never seals mail
// for a hosted endpoint; it calls Open instead. Mail for a hosted endpoint
// must be S/MIME unless this relay itself vouches for its origin: only
// mail an authenticated account submitted here (queue.Message.Account,
// not Inbound; trace "authenticated; account=…; ods=…") and the relay's
// own non-clinical System mail (queue.Message.System, not Inbound, which
// the relay sets on its DSNs and notices and no client can; trace
// "system") are exempt. Mail over MX, from trusted networks without an
// account, from a transaction that also had remote recipients (where
// smtpd clears Inbound), or with a null sender a client sent, is
// decrypted with the endpoint's key (KeysDir/<address>), its signature
// and signer chain are verified (revocation included), and the signer
// must belong to the organisation every From address and the envelope
// sender map to in the directory: the signing certificate speaks for that
// organisation (its ODS code, honoured only from an NHS organisation CA,
// certs.Trust.OrgCAs, since any CA can write an ODS code into a subject),
// or one of the signer's addresses is an endpoint of that organisation.
// The mailbox gets the decrypted message under
// "X-NHSRelay-SMIME: verified; signer=…; ods=…; alg=…; by=…".
//
// Delivery reports from other relays. A DSN comes from the null
// reverse-path (RFC 5321 §4.5.5) under a From such as
// MAILER-DAEMON@<that relay>, which is no directory endpoint; nhsrelay
// signs its own with its organisation's key (smime.relay_ods). So a
// null-sender message whose From is not in the directory is delivered if
// its signer speaks for an organisation (organisation CA) that is active
// in the directory, with "X-NHSRelay-SMIME: verified; signer=…; ods=…;
// dsn; …"; otherwise it is quarantined like any unknown sender.
//
// Signed content comes in two shapes (RFC 8551 §3.1). A whole message —
// wrapped as message/rfc822, as Seal does, or signed with its header —
// has its own, signed, From, which is checked; it is delivered after the
// outer message's Received fields. A body entity with only MIME fields,
// as Thunderbird and Outlook sign, has no From of its own: the outer
// message's From is checked against the signer, and the outer header
// (less the MIME fields that described the encryption) is delivered in
// front of the verified body entity. QUIRK: such a sender's Subject, To
// and Date are outside the signature, as the sending client chose; only
// From is tied to the signer. An X-NHSRelay-SMIME field arriving from
// outside is always removed.
//
// Quarantine. Mail for a hosted endpoint that is not encrypted ("the
// message was not S/MIME encrypted; clinical mail to this endpoint must
// be"), cannot be decrypted, is tampered, has an untrusted or expired
// signer, or whose signer does not belong to the sender's organisation is
// never delivered and never dropped: it is stored as it arrived in
// QuarantineDir, encrypted at rest with the spool key (relay/spool), with
// a <id>.json Record of why (0600); a notice goes into the endpoint's own
// mailbox; and the *QuarantineError (wrapping relay.ErrQuarantine) makes
// the relay fail the recipient with 5.7.5 and send the sender a DSN with
// the reason. A missing decryption key for a hosted endpoint is this
// relay's fault, not the message's: the delivery is deferred and retried.
//
// Keys and trust. KeysDir holds <ODS>.crt/.key (organisation signing
// pairs, ODS code in capitals) and <address>.crt/.key (hosted endpoint
// decryption pairs, lower case), as `nhsrelay init` and `nhsrelay certs
// issue --smime` write them; each is loaded by certs.LoadKeyPair on first
// use and cached. Config.Trust (certs.Trust: the S/MIME anchors, the
// organisation CAs and the CRLs) judges every certificate. Reload
// (SIGHUP) builds the Trust again with Config.LoadTrust — a new CRL takes
// effect at once — and re-reads the cached pairs; whatever fails to load
// keeps its previous version.
//
// Audit actions: smime.sealed, smime.held, smime.tls_only,
// smime.system_unsealed (the relay's own System mail sent as it is, over
// verified TLS, to a recipient it cannot seal for),
// smime.legacy_key_transport, smime.opened, smime.quarantined. None
// carries content: details are queue IDs, addresses, certificate names and
// serials, algorithms and reasons; a quarantine reason is one bounded
// line, and an smime failure whose words could quote the decrypted message
// gets a fixed reason instead. The relay records its own held, delivered
// and bounced events besides.
//
// Main types: Policy (New, Sealer, Opener, Seal, CheckRecipient, Open,
// Reload, Watch, Trust, Quarantined, QuarantinedMessage, AdminHandler), Config, HoldError,
// QuarantineError, Record.
package smimepolicy
