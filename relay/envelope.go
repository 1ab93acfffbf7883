package relay

// Envelope is what the intake knows about a message besides its content.
type Envelope struct {
	From       string   // reverse-path; "" is the null sender (RFC 5321 §4.5.5)
	Recipients []string // forward-paths, already checked by the intake's policy
	Account    string   // authenticated username; "" for trusted networks and MX
	ClientIP   string
	Inbound    bool // arrived on the MX listener for endpoints hosted here
}
