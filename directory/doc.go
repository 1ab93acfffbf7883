// Package directory is the registry of verified NHS endpoints: the
// organisations (by ODS code), the endpoints that may receive clinical mail,
// the sender accounts, and the policy that says whether a message may go to
// an address. It imports nothing else of nhsrelay.
package directory
