// Package peers federates relays over FHIR: a relay adds another relay as
// a peer (name, FHIR base URL, bearer token, the peer's CA), and the
// Manager imports the endpoints the peer hosts, from its FHIR R4 Endpoint
// search (directory/api), as remote endpoints of the peer's organisations,
// verified by federation (directory.MethodFederation; the evidence names
// the peer's URL and the certificate fingerprint). It keeps them in sync
// on an interval: added, changed, suspended, retired, certificates
// renewed (directory.(*Directory).SyncPeer, one atomic write per sync).
// A peer never overwrites an endpoint of this relay or of another peer.
//
// What a peer publishes (README "Federation between relays over FHIR"):
// each hosted Endpoint carries its S/MIME certificates as base64 DER
// (api.ExtSMIMECertificate) and the relay's MX as "host:port"
// (api.ExtNextHop). Only endpoints with a next hop are imported: a peer's
// own remote endpoints (other relays') are not passed on.
//
// Trust: the peer's CA (peer add -ca FILE) is the only anchor a peer's
// certificate is checked against on import, and it becomes trusted without
// any config edit: for S/MIME (SMIMECAs, which cmd adds to the trust
// anchors; as an organisation CA only for the ODS codes of that peer's
// endpoints, ScopedOrgCAs), for the TLS of the peer's MX (TLSRoots, for
// that host only), and for the FHIR fetch itself over HTTPS. Plain HTTP
// is allowed only to a loopback URL.
//
// Failures are never silent: a failed sync is logged at ERROR, counted
// (nhsrelay_peer_sync_failures_total), audited (peer.sync, failed) and
// leaves the imported endpoints as they were; a certificate change is
// logged, counted (nhsrelay_peer_certificate_changes_total) and audited
// per endpoint (endpoint.certificates).
//
// Peers are kept in a JSON file (Store, 0600, written durably: temp file,
// fsync, rename, folder fsync) beside the directory database.
//
// Main types: Manager (Add, Remove, List, Show, Sync, Run, Handler), Peer
// and Info.
package peers
