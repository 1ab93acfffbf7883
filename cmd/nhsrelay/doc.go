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
//   - serve -c FILE (serve_cmd.go): the server. Opens the audit log (audit),
//     the directory (directory, directory/boltstore), the queue store
//     (relay/queue), the S/MIME policy (relay/smimepolicy, certs), the relay
//     (relay, relay/spool), the SMTP listeners (smtpd) with a reloading TLS
//     certificate (certs.Reloader) and the admin HTTP API (admin.go:
//     relay's queue handler, directory/api, Prometheus /metrics). SIGTERM
//     stops it gracefully; SIGHUP reloads (serve_reload.go: config keys
//     that can change at run time, TLS certificate, S/MIME keys, admin
//     token; everything else is named as needing a restart). It writes the
//     addresses it bound to <data_dir>/listeners.json (serve_listeners.go),
//     so listen addresses may use port 0, and runs the daily expiry check
//     (serve_expiry.go: the directory's verifications and certificates, and
//     the server's own TLS and S/MIME certificates).
//   - check-config -c FILE (checkconfig_cmd.go): loads the config as serve
//     does (config.go) and prints every problem, each naming its key.
//   - queue list|show|retry|delete (queue_cmd.go, adminclient.go): talks
//     to the running server's admin API; output like Postfix's postqueue -p
//     (relay/queue types).
//   - audit verify (audit_cmd.go): checks the audit log's hash chain (audit).
//   - directory ... (directory_cmd*.go): manages the directory of NHS
//     endpoints through the admin API (directory, directory/ods).
//   - certs init-ca|issue|status (certs_cmd.go): development CA, issuing and
//     the expiry report (certs).
//
// Configuration: config.go reads the TOML file (BurntSushi/toml) and
// config_validate.go checks it into a config; every key is documented in
// nhsrelay.example.toml and the README, and every problem names its key.
package main
