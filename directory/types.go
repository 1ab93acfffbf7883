package directory

import "time"

// Purposes an endpoint may serve (Endpoint.Purpose). Empty means general.
const (
	PurposeGeneral            = "general"
	PurposeReferrals          = "referrals"
	PurposeResults            = "results"
	PurposeDischargeSummaries = "discharge-summaries"
	PurposePrescriptions      = "prescriptions"
	PurposeAppointments       = "appointments"
)

// Purposes lists the accepted values of Endpoint.Purpose.
func Purposes() []string {
	return []string{PurposeGeneral, PurposeReferrals, PurposeResults,
		PurposeDischargeSummaries, PurposePrescriptions, PurposeAppointments}
}

// Verification methods (Verification.Method).
const (
	MethodChallenge   = "challenge"
	MethodAttestation = "attestation"
	// MethodFederation: published by a federation peer that this relay's
	// administrator added (directory/peers); the evidence names the
	// peer's URL and the certificate fingerprint.
	MethodFederation = "federation"
)

// Organisation sources (Organisation.Source).
const (
	SourceODS   = "ods"
	SourceAdmin = "admin"
	// SourcePeer: learnt from a federation peer's FHIR directory, for an
	// organisation this relay had not heard of.
	SourcePeer = "peer"
)

// Filter selects endpoints; empty fields match everything. Address matches
// an endpoint's address case-insensitively, and a domain also matches the
// mailboxes in it. Name is a word-prefix search on the organisation's name.
type Filter struct {
	ODS     string
	Address string
	Status  EndpointStatus
	Name    string
}

// ImportResult says what an ODS import did, as ODS codes, each sorted.
// Closed holds organisations that became closed or dormant in this import
// (they are not also in Updated); Suspended holds the addresses of the
// endpoints suspended because of it.
type ImportResult struct {
	Added   []string `json:"added"`
	Updated []string `json:"updated"`
	Closed  []string `json:"closed"`
	// Reopened: closed or dormant here, open in the extract. Their
	// successor link is cleared and the endpoints their closure suspended
	// are restored (Restored); others' suspensions stay.
	Reopened  []string `json:"reopened,omitempty"`
	Unchanged []string `json:"unchanged"`
	Suspended []string `json:"suspended,omitempty"`
	Restored  []string `json:"restored,omitempty"`
}

// ExpiryKind says what is expiring.
type ExpiryKind string

const (
	ExpiryVerification ExpiryKind = "verification"
	ExpiryCertificate  ExpiryKind = "certificate"
	// ExpiryCertificateProblem: the endpoint's certificates are within
	// their dates but none is one the relay would encrypt to (refused by
	// Config.CertCheck, or naming another endpoint); mail to it is held.
	// A warning, never a suspension: a trust-anchor misconfiguration must
	// not suspend every endpoint.
	ExpiryCertificateProblem ExpiryKind = "certificate-problem"
)

// ExpiryNotice is one endpoint whose verification or certificate is due.
type ExpiryNotice struct {
	EndpointID string     `json:"endpoint_id"`
	Address    string     `json:"address"`
	ODS        string     `json:"ods"`
	Kind       ExpiryKind `json:"kind"`
	Expires    time.Time  `json:"expires"`
	DaysLeft   int        `json:"days_left"` // negative once past
	Text       string     `json:"text"`      // one line for a person
}

// ExpiryReport is what one CheckExpiry run found and did. Lines is the body
// of the daily summary mail to the administrators, one line per notice.
type ExpiryReport struct {
	At        time.Time      `json:"at"`
	Checked   int            `json:"checked"`   // verified endpoints looked at
	Warnings  []ExpiryNotice `json:"warnings"`  // due within WarnBefore, or a certificate problem
	Suspended []ExpiryNotice `json:"suspended"` // suspended by this run
	Lines     []string       `json:"lines"`
}

// CertInfo summarises one S/MIME certificate of an endpoint.
type CertInfo struct {
	Subject  string    `json:"subject"`
	Emails   []string  `json:"emails,omitempty"`
	NotAfter time.Time `json:"not_after"`
	DaysLeft int       `json:"days_left"` // negative once expired
	// CA marks an issuing CA certificate stored with the chain: an
	// intermediate, not a certificate mail is encrypted to.
	CA bool `json:"ca,omitempty"`
	// Problem says why the relay would not encrypt to this certificate:
	// Config.CertCheck's reason, or that it names another endpoint.
	Problem string `json:"problem,omitempty"`
}

// CheckResult answers "can I send to this address?" with the reasons.
// Reasons holds every finding that stops sending or deserves attention,
// in words; OK is true only if mail would be accepted and could be
// encrypted.
type CheckResult struct {
	Address      string        `json:"address"`
	OK           bool          `json:"ok"`
	Reasons      []string      `json:"reasons,omitempty"`
	Endpoint     Endpoint      `json:"endpoint,omitzero"`
	Organisation *Organisation `json:"organisation,omitempty"`
	Certificates []CertInfo    `json:"certificates,omitempty"`
	Path         string        `json:"path,omitempty"` // "hosted here", "smtp to host:port (verified TLS)", "MX of domain"
}
