package directory

import (
	"strings"
	"time"
)

// OrgStatus is an organisation's status as ODS publishes it.
type OrgStatus string

const (
	OrgActive   OrgStatus = "active"
	OrgDormant  OrgStatus = "dormant"
	OrgProposed OrgStatus = "proposed"
	OrgClosed   OrgStatus = "closed"
)

// Organisation is an NHS organisation identified by its ODS code.
type Organisation struct {
	ODS        string    `json:"ods"`
	Name       string    `json:"name"`
	Status     OrgStatus `json:"status"`
	ClosedOn   time.Time `json:"closed_on,omitzero"`
	Successor  string    `json:"successor,omitempty"` // ODS code of the successor organisation
	Address    []string  `json:"address,omitempty"`
	Postcode   string    `json:"postcode,omitempty"`
	Phone      string    `json:"phone,omitempty"`
	Kind       string    `json:"kind,omitempty"`   // "gp-practice", "trust", "pharmacy", ...
	Source     string    `json:"source,omitempty"` // "ods" or "admin"
	ImportedAt time.Time `json:"imported_at,omitzero"`
}

// EndpointStatus is where an endpoint is in its life: pending → verified →
// suspended → retired.
type EndpointStatus string

const (
	StatusPending   EndpointStatus = "pending"
	StatusVerified  EndpointStatus = "verified"
	StatusSuspended EndpointStatus = "suspended"
	StatusRetired   EndpointStatus = "retired"
)

// NextHopKind says how mail for an endpoint leaves this relay.
type NextHopKind string

const (
	HopHosted NextHopKind = "hosted" // delivered to a Maildir on this relay
	HopHost   NextHopKind = "host"   // SMTP to NextHop.Host ("host:port")
	HopMX     NextHopKind = "mx"     // SMTP to the MX hosts of the address's domain
)

// TLSMode is the transport security required towards a next hop.
type TLSMode string

const (
	// TLSVerified (the default, also when empty) requires STARTTLS with a
	// certificate that verifies against the system roots and configured CAs.
	TLSVerified TLSMode = "verified"
	// TLSPlainLoopback allows plain SMTP, and only to a loopback next hop
	// configured explicitly (benchmarks, test sinks).
	TLSPlainLoopback TLSMode = "plain-loopback"
)

// NextHop is the delivery path for an endpoint.
type NextHop struct {
	Kind NextHopKind `json:"kind"`
	Host string      `json:"host,omitempty"` // "host:port" for HopHost
	TLS  TLSMode     `json:"tls,omitempty"`
}

// Verification records how an endpoint was shown to belong to its organisation.
type Verification struct {
	By       string    `json:"by,omitempty"`
	At       time.Time `json:"at,omitzero"`
	Method   string    `json:"method,omitempty"` // "challenge" or "attestation"
	Evidence string    `json:"evidence,omitempty"`
	Expires  time.Time `json:"expires,omitzero"`
}

// Endpoint is an address (a mailbox or a whole domain) that may receive
// clinical mail once verified.
type Endpoint struct {
	ID           string   `json:"id"`
	Address      string   `json:"address"` // "name@domain" or "domain"
	ODS          string   `json:"ods"`     // owning organisation
	Purpose      string   `json:"purpose,omitempty"`
	NextHop      NextHop  `json:"next_hop"`
	Certificates [][]byte `json:"certificates,omitempty"` // DER S/MIME encryption certificates
	TLSOnly      bool     `json:"tls_only,omitempty"`     // admin exception: no S/MIME (audited)
	// TLSOnlyEvidence is why an administrator allowed TLSOnly (required
	// with it, empty without it; audited as endpoint.tls_only).
	TLSOnlyEvidence string         `json:"tls_only_evidence,omitempty"`
	FaxNumbers      []string       `json:"fax_numbers,omitempty"` // E.164
	Contacts        []string       `json:"contacts,omitempty"`
	Status          EndpointStatus `json:"status"`
	StatusReason    string         `json:"status_reason,omitempty"`
	Redirect        string         `json:"redirect,omitempty"` // explicit admin redirect (audited)
	Verification    Verification   `json:"verification,omitzero"`
}

// Hosted reports whether mail for the endpoint is delivered on this relay.
func (e Endpoint) Hosted() bool { return e.NextHop.Kind == HopHosted }

// Account is a sender that may submit mail after AUTH. Every address it
// owns is an endpoint (or in a domain endpoint) of its organisation.
type Account struct {
	Username     string   `json:"username"`
	PasswordHash string   `json:"password_hash"` // bcrypt
	ODS          string   `json:"ods,omitempty"` // organisation the account sends for
	Addresses    []string `json:"addresses"`     // From / MAIL FROM addresses it owns
	Disabled     bool     `json:"disabled,omitempty"`
	Receipts     string   `json:"receipts,omitempty"` // success DSNs: "always", "on-request" (default, also ""), "never" (issue 12)

	// DisabledReason is why an administrator disabled the account; AUTH
	// and MAIL/RCPT refusals quote it.
	DisabledReason string    `json:"disabled_reason,omitempty"`
	Note           string    `json:"note,omitempty"` // for administrators ("ward 7 PAS")
	Created        time.Time `json:"created,omitzero"`
	PasswordSet    time.Time `json:"password_set,omitzero"` // when the password last changed
}

// Owns reports whether addr is one of the account's addresses
// (compared case-insensitively, RFC 5321 §2.4 leaves the local part to the
// receiving host; we own both sides so we fold case).
func (a Account) Owns(addr string) bool {
	for _, own := range a.Addresses {
		if strings.EqualFold(own, addr) {
			return true
		}
	}
	return false
}
