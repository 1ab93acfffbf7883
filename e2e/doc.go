// Package e2e holds end-to-end tests that drive real nhsrelay binaries as an
// operator would: `nhsrelay init` for each instance, configs edited,
// `nhsrelay serve` on kernel-chosen loopback ports, clinical mail submitted
// with the go-smtp client over STARTTLS+AUTH, and the results read from the
// instances' Maildirs and audit logs. It has no code outside its tests.
//
// smime_test.go: two instances, A (hosting the sending practice A81001) and
// B (hosting the trust RX9's referrals mailbox). Mail from A's account to B
// is signed with A81001's key, encrypted to B's endpoint certificate, sent
// over verified TLS to B's MX listener, decrypted and verified by B and
// delivered with the X-NHSRelay-SMIME trace header (a forged one from the
// sender removed); mail for an endpoint whose certificate has expired is
// held on A and its sender gets a DSN saying so (issue 5).
package e2e
