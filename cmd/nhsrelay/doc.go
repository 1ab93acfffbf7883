// Command nhsrelay runs and operates the NHS messaging relay. Its job is to
// parse flags and the config file and to wire the packages together; mail,
// directory, certificate and audit logic live in those packages. main.go
// dispatches `nhsrelay COMMAND` to run<Command>(args) in <command>_cmd.go.
//
// Subcommands and what each wires:
//
//   - init DIR (init_cmd.go): writes a commented config from
//     nhsrelay.example.toml, a development CA and TLS server certificate
//     (certs), the spool key (relay/spool), a sample directory with a
//     sender account (directory, directory/boltstore) and audits it (audit).
//   - serve -c FILE (serve_cmd.go): the server, as a list of parts wired
//     in order (serve_parts.go, one function each): folders made durably
//     (internal/durable), the audit log (audit), the S/MIME trust
//     (certs.LiveTrust) and the directory (directory, directory/boltstore),
//     the queue store, S/MIME policy and relay (relay/queue,
//     relay/smimepolicy, relay), the SMTP listeners (smtpd) with a
//     reloading TLS certificate (certs.Reloader), the admin HTTP API
//     (package admin; relay's queue handler, the quarantine, directory/api
//     and Prometheus /metrics are mounted on it by path) and the expiry job
//     (directory/expiry, with certs.InUse for the server's own
//     certificates); with federation (serve_federation.go) the peers
//     (directory/peers: their CAs added to the trust, certs.ScopedOrgCA,
//     and to the relay's TLS roots for their MX only; the sync job) and
//     the [federation] FHIR listener (HTTPS, directory/api behind the FHIR
//     read token). serve_run.go binds every listener before serving any,
//     writes <data_dir>/listeners.json (serve_listeners.go, so listen
//     addresses may use port 0), runs the background jobs, and on SIGTERM
//     stops the parts in order; SIGHUP reloads (serve_reload.go: config
//     keys that can change at run time, TLS certificate, S/MIME keys and
//     trust, admin token; everything else is named as needing a restart).
//     New wiring: a part gets its own open function and one line in
//     serve's list; a listener is a service (server.listen), a background
//     job goes into server.jobs, an admin handler is Mounted in openAdmin.
//   - check-config -c FILE (checkconfig_cmd.go): loads the config as serve
//     does (config.go) and prints every problem, each naming its key.
//   - queue list|show|retry|delete (queue_cmd.go, adminclient.go): talks
//     to the running server's admin API; output like Postfix's postqueue -p
//     (relay/queue types).
//   - audit verify (audit_cmd.go): checks the audit log's hash chain (audit).
//   - trace ID|MESSAGE-ID|RCPT (trace_cmd.go): a message's timeline from
//     the admin API's /v1/messages, printed by audit/timeline.Report.
//     serve_timeline.go is the serve parts for it (issue 12): openTimeline
//     (the audit/timeline index over the audit log, set aside and rebuilt
//     if unreadable) and openStatus (the senders' status API on
//     receipts.status_listen: TLS, HTTP Basic with the SMTP account, only
//     that account's messages).
//   - directory ... (directory_cmd*.go): manages the directory of NHS
//     endpoints through the admin API (directory, directory/ods);
//     directory peer ... (peer_cmd.go) federation peers (directory/peers).
//   - account ... (account_cmd.go): sender accounts through the admin API
//     (directory/api's /v1/accounts types).
//   - certs init-ca|issue|status (certs_cmd.go): development CA, issuing and
//     the expiry report (certs).
//   - fax convert|ingest|deadletter|report|server (fax_cmd.go): the fax
//     bridge (faxbridge): standalone conversion, the HylaFAX faxrcvd hook
//     (a durable drop into fax.spool_dir), and the admin API's /v1/faxes/.
//     In serve, openFax (serve_fax.go) opens the bridge; its T.37 handler
//     joins smtpd's recipient handlers through an adapter (faxbridge may
//     not import smtpd), its spool folder is a job, its HTTPS upload a
//     service.
//   - status -c FILE (status_cmd.go): cluster mode: live nodes, the shared
//     queue's depth and delivery leases, read from Redis (internal/redisconn,
//     relay/queue).
//
// Cluster mode (serve_redis.go, config_redis.go): with redis.url set,
// openRedis connects and checks Redis (internal/redisconn: reachable,
// version, AOF fsync on every write) and the directory, queue and body
// stores are the Redis ones (directory/redisstore, relay/queue,
// relay/spool); openCluster adds the jobs that announce the node, rescan
// the shared queue and refresh the directory.
//
// Configuration: config_decode.go reads the TOML file (BurntSushi/toml) key
// by key, so every unknown key and wrong type is reported; config_validate.go
// checks it into a config and then runs each package's ValidateSettings on
// the packages' Configs built from it (config_parts.go: the same builders
// serve uses), so check-config and start-up agree. Defaults come from the
// packages' Default constants. Every key is documented in
// nhsrelay.example.toml and the README, and every problem names its key.
package main
