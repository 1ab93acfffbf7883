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
}
