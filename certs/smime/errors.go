package smime

import "errors"

// Sentinels for what went wrong opening a message. Open returns an
// *OpenError that wraps one of them (errors.Is) and says in words what a
// person should do.
var (
	// ErrNotEncrypted: the message is not S/MIME enveloped-data; it was
	// sent in clear (or only signed) and must not be treated as protected.
	ErrNotEncrypted = errors.New("smime: message is not encrypted")
	// ErrCannotDecrypt: the message is not encrypted to this endpoint's
	// certificate, or the key does not match.
	ErrCannotDecrypt = errors.New("smime: cannot decrypt")
	// ErrWeakAlgorithm: DES, 3DES, RC2, SHA-1 or another refused algorithm.
	ErrWeakAlgorithm = errors.New("smime: refused algorithm")
	// ErrTampered: after decryption, no signature verifies over the
	// content — altered or damaged ciphertext, or content that is not
	// signed, or not parseable as S/MIME. These are deliberately one kind
	// with one Reason (EFAIL, CVE-2017-17689): the plaintext of an
	// unverified message must not shape what the sender is told.
	ErrTampered = errors.New("smime: bad signature")
	// ErrUntrustedSigner: the signer's certificate does not chain to the
	// S/MIME trust anchors, lacks the usages, or has a weak key.
	ErrUntrustedSigner = errors.New("smime: untrusted signer")
	// ErrExpiredSigner: the signer's certificate (or its CA) is expired or
	// not yet valid.
	ErrExpiredSigner = errors.New("smime: signer certificate expired")
	// ErrMalformed: the MIME or CMS structure cannot be parsed.
	ErrMalformed = errors.New("smime: malformed message")
)

// ErrBadSignature is ErrTampered under the name the relay's DSN code uses.
var ErrBadSignature = ErrTampered

// OpenError is what Open returns. Reason is a sentence for the quarantine
// record and the DSN ("the message was altered or damaged in transit…");
// it never contains message content, and for ErrTampered it is always the
// same sentence.
type OpenError struct {
	Kind   error  // one of the sentinels above
	Reason string // what happened, in words a person acts on
	Err    error  // the underlying cause, if any (for logs); nil for ErrTampered
	// Detail says, for the operator's log only, which check failed when
	// Kind is ErrTampered ("the CBC padding is wrong"). It is one of a
	// fixed set of phrases, never message content, but it tells apart
	// what Reason deliberately does not: do not send it to the sender.
	// Error() leaves it out.
	Detail string
}

func (e *OpenError) Error() string {
	if e.Err != nil {
		return e.Reason + ": " + e.Err.Error()
	}
	return e.Reason
}

// Unwrap lets errors.Is match Kind and errors.As reach the cause, such as
// a *certs.CertificateError.
func (e *OpenError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

func openErr(kind error, reason string, cause error) *OpenError {
	return &OpenError{Kind: kind, Reason: reason, Err: cause}
}
