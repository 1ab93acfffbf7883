// Package api serves the directory over HTTP: the admin JSON API that the
// nhsrelay CLI and operators use, and a read-only FHIR R4 API for other
// systems that want to find an NHS endpoint.
//
// Admin API (JSON; cmd's admin listener authenticates the bearer token and
// puts the actor in the request context with audit.WithActor; the directory
// audits each change under that actor):
//
//	GET  /v1/directory/organisations[?name=]        list (name: word-prefix search)
//	POST /v1/directory/organisations                add one (source "admin")
//	GET  /v1/directory/organisations/{ods}          one organisation
//	PUT  /v1/directory/organisations/{ods}          create or replace its editable fields
//	GET  /v1/directory/endpoints[?ods=&address=&status=&name=]
//	POST /v1/directory/endpoints                    add one (status pending)
//	GET  /v1/directory/endpoints/{id}
//	PUT  /v1/directory/endpoints/{id}               replace its editable fields
//	PUT  /v1/directory/endpoints/{id}/certificates  {"certificates": [DER, base64]} replace its S/MIME certificates
//	POST /v1/directory/endpoints/{id}/suspend       {"reason": "..."}
//	POST /v1/directory/endpoints/{id}/retire        {"reason": "..."}
//	POST /v1/directory/endpoints/{id}/challenge     send a one-time code to the address
//	POST /v1/directory/endpoints/{id}/verify        {"code": "..."} confirm that code
//	POST /v1/directory/endpoints/{id}/attest        {"evidence": "..."} administrator attests
//	POST /v1/directory/endpoints/{id}/redirect      {"to": "addr"} ("" removes it)
//	POST /v1/directory/import-ods[?strict=1]        body: epraccur.csv
//	POST /v1/directory/import-ods-successors[?strict=1]  body: succ.csv
//	GET  /v1/directory/check?address=               can I send to this? (directory.CheckResult)
//	GET  /v1/directory/export?format=csv|json[&what=endpoints|organisations|accounts]
//
// Sender accounts (accounts.go; the password hash is never sent, a
// password only once, when the server generated it):
//
//	GET    /v1/accounts                       {"accounts": [...]}
//	POST   /v1/accounts                       {"username", "addresses", "ods"?, "note"?, "receipts"?, "password"?}
//	                                          → 201 {"account": ..., "password": generated}
//	GET    /v1/accounts/{user}
//	PUT    /v1/accounts/{user}                replace ods, addresses, note, receipts
//	DELETE /v1/accounts/{user}                → 204
//	POST   /v1/accounts/{user}/password       {"password"?} set it, or generate one (answered once)
//	POST   /v1/accounts/{user}/disable        {"reason": "..."} AUTH and MAIL/RCPT refusals quote it
//	POST   /v1/accounts/{user}/enable
//	POST   /v1/accounts/{user}/owns           {"add": [...], "remove": [...]}
//
// Every address an account owns must be an endpoint (or in a domain
// endpoint) of its organisation; with no "ods" the organisation is the
// first address's. A refused write names every bad field and writes
// nothing; each change is audited under the request's actor.
//
// Errors are {"error": "words", "fields": {"address": "words"}}: 400 for a
// bad request (fields name each bad JSON field or query parameter), 404
// when the thing asked for does not exist, 409 for a clash with what the
// directory holds, 413 for a body over the limit, 415 for a body that is
// not JSON, 422 for a strict ODS import with bad rows (the body carries the
// report). Request bodies are decoded strictly: unknown fields, trailing
// data and read-only fields are refused. Each request makes at most one
// directory write, so a refused request has written nothing.
//
// FHIR R4 read API (HL7 FHIR R4, application/fhir+json):
//
//	GET /fhir/Endpoint?identifier=&organization=&address=&status=   Bundle (searchset)
//	GET /fhir/Endpoint/{id}
//	GET /fhir/Organization?identifier=&name=                        Bundle (searchset)
//	GET /fhir/Organization/{ods}
//
// Errors are OperationOutcome resources. Unsupported search parameters are
// ignored unless the client sends "Prefer: handling=strict" (R4 §3.1.1.5).
// How directory values map onto FHIR (status follows what RCPT would
// answer now, directory.(*Directory).Usable: accepted → active, refused
// verified or suspended → suspended, pending and retired → off; connectionType direct-project, or
// urn:nhsrelay:endpoint-connection-type#smtp-tls for an endpoint exempted
// from S/MIME; address mailto:, "mailto:*@domain" for a whole domain) is
// documented beside the code in fhir.go.
//
// Main types: New returns the http.Handler for both APIs; Export is the
// JSON backup, FHIREndpoint, FHIROrganization, Bundle and OperationOutcome
// the FHIR resources; FHIRStatus maps an endpoint to its FHIR status.
package api
