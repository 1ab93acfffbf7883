// Package admin is the administrators' HTTP API front: one bearer token
// (RFC 6750, compared in constant time, re-read on SIGHUP), an access log
// without headers or bodies, /healthz for a supervisor's liveness probe,
// /metrics for Prometheus, and a mux on which each package's own handlers
// are mounted by path (relay: /v1/queue, smimepolicy: /v1/quarantine,
// directory/api: /v1/directory/, /v1/accounts and /fhir/).
//
// It sits at the intakes' level (rank 4 in scripts/check-imports, beside
// smtpd): like an intake it is a way in from outside, and it only hands
// requests to handlers cmd gives it; it imports none of them, only audit
// (to put the "admin" actor into each request's context).
//
// Main types: Token, API (New, Mount, Handler) and NewServer.
package admin
