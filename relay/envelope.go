package relay

// Envelope is what the intake knows about a message besides its content.
type Envelope struct {
	From       string   // reverse-path; "" is the null sender (RFC 5321 §4.5.5)
	Recipients []string // forward-paths, already checked by the intake's policy
	Account    string   // authenticated username; "" for trusted networks and MX
	ClientIP   string
	Inbound    bool // arrived on the MX listener for endpoints hosted here
	// System marks the relay's own, non-clinical mail: verification
	// challenges, administrators' summaries and DSNs. Only code in this
	// binary sets it, never an intake for mail it received. System mail may
	// go to an endpoint that is pending or suspended (never retired), and a
	// recipient without a valid S/MIME certificate gets it unsealed over
	// verified TLS, audited.
	System bool
	// Kind is clinical (zero) or notice mail; see Kind.
	Kind Kind
	// ID, if set, is the intake's own idempotency key, used as the queue
	// ID (spool ID rules: letters, digits, '.', '_', '-'). Submitting
	// again with the ID of a message still queued stores nothing and
	// returns the ID, so an intake that crashed between Submit and
	// recording it can simply submit again; a hosted delivery is
	// idempotent by queue ID (relay/maildir), so one already delivered is
	// not delivered twice. The fax bridge uses its fax reference.
	ID string

	// DSN request (RFC 3461) from the intake's MAIL and RCPT parameters:
	// RcptDSN[i] is Recipients[i]'s (a shorter slice, or a zero value,
	// means none: the default, failure and delay notices). Ret is "FULL"
	// or "HDRS" (RET), EnvID the sender's ENVID.
	RcptDSN []RcptDSN
	Ret     string
	EnvID   string
}

// RcptDSN is one recipient's DSN request: NOTIFY's keywords ("SUCCESS",
// "FAILURE", "DELAY", or "NEVER" alone) and ORCPT as "type;address".
type RcptDSN struct {
	Notify []string
	ORcpt  string
}

// Kind says which rules a message travels under. The zero value is
// clinical mail: only to verified NHS endpoints from the directory, S/MIME
// sealed. KindNotice is appointment notice mail to patients' own mailboxes
// on the open internet (notices/, issue 11): the only mail that may leave
// for an address outside the directory.
type Kind string

const (
	KindClinical Kind = ""
	// KindNotice mail goes to the MX hosts of the recipient's domain over
	// STARTTLS (verified where the domain publishes an MTA-STS policy in
	// enforce mode, RFC 8461), DKIM-signed by the NoticeSigner, never
	// S/MIME sealed, never to an address the directory knows, within the
	// per-domain rate limit. Its outcomes go to the NoticeObserver
	// instead of DSNs. Only the notices intake and the SMTP notice
	// account set it.
	KindNotice Kind = "notice"
)

func (k Kind) valid() bool { return k == KindClinical || k == KindNotice }
