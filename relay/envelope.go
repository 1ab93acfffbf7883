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
