// Package directory is the registry of verified NHS endpoints: the
// organisations (by ODS code), the endpoints that may receive clinical mail,
// the sender accounts, and the policy that says whether a message may go to
// an address. It imports nothing else of nhsrelay but audit.
//
// Main types:
//   - Directory (Open with a Config): everything in memory, served to
//     lookups under a read lock; every write is validated, written to the
//     Store (durable, atomic) and only then to memory, and audited.
//   - Store (store.go): the small persistence interface, with Batch for
//     atomic multi-record writes. Implementations: boltstore (embedded) and
//     redisstore (cluster); each passes storetest.Run.
//   - Organisation, Endpoint, Account, Challenge (model.go, store.go).
//   - ErrNotFound, ErrAuthFailed, ErrConflict, *NotVerifiedError,
//     *ValidationError (errors.go), *AccountDisabledError (accounts.go).
//
// The life of an endpoint: AddEndpoint (pending) → StartChallenge mails a
// one-time code, ConfirmChallenge checks it (the administrator's `directory
// verify -code`) or ConfirmByReply finds it in the owner's reply (called by
// the SMTP side for mail to Config.ChallengeFrom), or Attest records an
// administrator's evidence (verified, for ReverifyAfter, 12 months by
// default as DCB1596 accreditation is annual) → Suspend, or automatically
// when its organisation closes (ImportOrganisations, PutOrganisation) or its
// verification or last S/MIME certificate expires (CheckExpiry) → Retire.
// CheckRecipient is the RCPT-time policy (Resolve also says which endpoint
// the address named, so that the relay can audit a followed redirect with
// Resolution.RedirectEvent; Usable applies the same rule to one endpoint,
// for FHIR status); Check answers "can I send to this?" with reasons, the
// certificates judged as the relay will (Config.CertCheck; NamesEndpoint is
// the relay's rule for which certificate belongs to an endpoint) and the
// delivery path. The TLS-only exception (no S/MIME) needs evidence and is
// audited as endpoint.tls_only.
//
// The life of an account (accounts.go): AddAccount (each address an
// endpoint of its organisation, named when it is not) → SetPassword,
// ChangeAddresses, UpdateAccount, DisableAccount with a reason (AUTH after
// the right password, and ActiveAccount for a session already logged in,
// return *AccountDisabledError) → EnableAccount → DeleteAccount. Each is
// one audited write; a refused one names every bad field and writes nothing.
//
// Authenticate (SMTP AUTH) runs bcrypt; with Config.AuthCacheTTL it
// remembers successes for a while (authcache.go, as Dovecot's auth_cache):
// an HMAC under a per-process key, tied to the account's current hash, so
// a password change, a disable or a Refresh ends it at once. Failures are
// never remembered, so guessing costs bcrypt every time.
//
// Standards: RFC 5321 §4.1.2 and §4.5.3.1 (address syntax and limits, in
// NormaliseAddress), RFC 5322 §3.2.3 (atext), RFC 1035 §2.3.4 (label length),
// ITU-T E.164 and the UK numbering plan (NormaliseFax), RFC 5322 and RFC
// 3834 (the challenge message; a reply's quoted lines, RFC 3676 §4.5, do
// not confirm it), RFC 4954 (the AUTH that Authenticate
// serves), RFC 8550 §3 (an S/MIME certificate names its address).
package directory
