# nhsrelay.sh: start and stop an nhsrelay instance for scripts/bench.
# Sourced; expects $NHSRELAY, $smtpload, $tlsdir, $pids and die/note/forget.
# The sink endpoint is added through the admin API (curl): the CLI has no
# way yet to give the evidence a tls_only endpoint requires.
#
#   nhs_start DIR MODE SINK_PORT       init DIR, configure, serve, add the sink
#                                      endpoint; sets nhs_pid, nhs_smtp_port.
#                                      MODE 0: plain, 1: STARTTLS (both as
#                                      Postfix: trusted loopback, tls_only
#                                      sink); 2: clinical path (STARTTLS+AUTH
#                                      as init's account, S/MIME to a sink
#                                      endpoint with a certificate, verified
#                                      TLS out), 3 the same (the client keeps
#                                      its session); also sets nhs_user,
#                                      nhs_pass, nhs_from
#   nhs_stop                           SIGTERM, bounded wait
#   nhs_log_tail                       the last lines of the server log
#   nhs_cpu_ms                         CPU time (user + system) nhsrelay has
#                                      used so far, in milliseconds

# setkey FILE SECTION KEY VALUE: set KEY in [SECTION] of a TOML file to the
# literal VALUE, adding the line at the end of the section if absent.
setkey() {
	local file=$1 sec=$2 key=$3 val=$4 tmp
	tmp=$(mktemp "$file.XXXXXX")
	if ! awk -v sec="[$sec]" -v key="$key" -v val="$val" '
		function flush() { if (cur == sec && !done) { print key " = " val; done = 1 } }
		/^\[/ { flush(); cur = $0 }
		cur == sec && $0 ~ "^" key "[ \t]*=" { print key " = " val; done = 1; next }
		{ print }
		END { flush(); if (!seen && !done) exit 3 }
		$0 == sec { seen = 1 }
	' "$file" >"$tmp"; then
		rm -f "$tmp"
		die "config has no [$sec] table"
	fi
	mv "$tmp" "$file"
}

nhs_start() {
	local dir=$1 tls=$2 sink_port=$3
	rm -rf "$dir"
	"$NHSRELAY" init "$dir" >"$dir.init.log" 2>&1 || die "nhsrelay init: $(cat "$dir.init.log")"
	local conf=$dir/nhsrelay.toml ports
	ports=$("$smtpload" freeport -n 2)
	nhs_smtp_port=$(sed -n 1p <<<"$ports")
	nhs_admin=127.0.0.1:$(sed -n 2p <<<"$ports")
	# info, the default: a line per message queued and delivered, to a file,
	# as Postfix writes its maillog through postlogd. "warn" would spare
	# nhsrelay the per-message logging that Postfix pays, which is not
	# like for like.
	setkey "$conf" server log_level '"info"'
	# Clients and the sink are on loopback: trust it, as one trusts a
	# content filter, so the bench measures relaying and not AUTH.
	setkey "$conf" smtp submission_listen "\"127.0.0.1:$nhs_smtp_port\""
	setkey "$conf" smtp submissions_listen '""'
	setkey "$conf" smtp mx_listen '""'
	if [ "$tls" -lt 2 ]; then
		setkey "$conf" smtp trusted_networks '["127.0.0.0/8"]'
	fi
	# init's sample account (clinical path): its password is printed once.
	nhs_user=$(awk '$1 == "username" { print $2; exit }' "$dir.init.log")
	nhs_pass=$(awk '$1 == "password" { print $2; exit }' "$dir.init.log")
	nhs_from=$(awk '$1 == "sends" && $2 == "as" { print $3; exit }' "$dir.init.log")
	setkey "$conf" admin listen "\"$nhs_admin\""
	# The 50 × 10 MB run opens 50 sessions from one IP: exactly the default.
	setkey "$conf" smtp max_conns_per_ip 100
	# Same deliveries in flight to the one next hop as Postfix's default
	# destination concurrency (20).
	setkey "$conf" relay hop_concurrency 20
	# Both relays present the bench certificate and trust the bench CA.
	setkey "$conf" tls cert_file "\"$tlsdir/server.pem\""
	setkey "$conf" tls key_file "\"$tlsdir/server.key\""
	setkey "$conf" tls ca_files "[\"$tlsdir/ca.pem\"]"
	"$NHSRELAY" check-config -c "$conf" >"$dir.check.log" 2>&1 ||
		die "the bench config for nhsrelay does not validate: $(cat "$dir.check.log")"
	nhs_token=$(tr -d ' \n' <"$dir/admin.token")
	nhs_log=$dir/serve.log
	"$NHSRELAY" serve -c "$conf" >"$nhs_log" 2>&1 &
	nhs_pid=$!
	pids+=("$nhs_pid")
	local i
	for i in $(seq 1 300); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$nhs_smtp_port") 2>/dev/null &&
			(exec 3<>"/dev/tcp/${nhs_admin%:*}/${nhs_admin#*:}") 2>/dev/null; then
			break
		fi
		kill -0 "$nhs_pid" 2>/dev/null || die "nhsrelay serve exited: $(tail -5 "$nhs_log")"
		[ "$i" -lt 300 ] || die "nhsrelay did not listen within 30s: $(tail -5 "$nhs_log")"
		sleep 0.1
	done
	# The sink's domain, as one endpoint, added and verified through the
	# admin API: every address @bench.nhs.test goes to the sink. Plain SMTP
	# to a loopback next hop only when the directory says so; with TLS the
	# sink's certificate must verify against the bench CA. tls_only: the
	# sink is a test server without S/MIME keys, and Postfix does no S/MIME
	# either, so both relays move the same bytes.
	local hop
	if [ "$tls" -ge 2 ]; then
		# The sink as a real clinical endpoint: an S/MIME certificate from
		# init's CA (a trust anchor), so every message is signed and
		# encrypted for it, and a verified-TLS next hop.
		[ -n "$nhs_user" ] && [ -n "$nhs_pass" ] && [ -n "$nhs_from" ] ||
			die "no sample account in nhsrelay init's output: $(cat "$dir.init.log")"
		"$NHSRELAY" certs issue --smime sink@bench.nhs.test --ca "$dir/ca" --out "$dir/sink-smime" >"$dir.cert.log" 2>&1 ||
			die "certs issue --smime: $(cat "$dir.cert.log")"
		"$NHSRELAY" directory -c "$conf" add -ods RX9 -hop "localhost:$sink_port" -cert "$dir/sink-smime.crt" \
			sink@bench.nhs.test >"$dir.add.log" 2>&1 || die "directory add: $(cat "$dir.add.log")"
		local id
		id=$(grep -o 'ep-[a-z0-9]*' "$dir.add.log" | head -1)
		[ -n "$id" ] || die "no endpoint ID in: $(cat "$dir.add.log")"
		api POST "/v1/directory/endpoints/$id/attest" '{"evidence":"benchmark sink on loopback"}' >/dev/null
		return
	fi
	if [ "$tls" = 1 ]; then
		hop="{\"kind\":\"host\",\"host\":\"localhost:$sink_port\",\"tls\":\"verified\"}"
	else
		hop="{\"kind\":\"host\",\"host\":\"127.0.0.1:$sink_port\",\"tls\":\"plain-loopback\"}"
	fi
	local ep id
	ep=$(api POST /v1/directory/endpoints "{\"address\":\"bench.nhs.test\",\"ods\":\"RX9\",\"purpose\":\"general\",\"next_hop\":$hop,\"tls_only\":true,\"tls_only_evidence\":\"benchmark sink on loopback: no S/MIME keys\"}")
	id=$(sed -n 's/.*"id"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' <<<"$ep")
	[ -n "$id" ] || die "no endpoint ID in: $ep"
	api POST "/v1/directory/endpoints/$id/attest" '{"evidence":"benchmark sink on loopback"}' >/dev/null
}

# api METHOD PATH [JSON]: the admin API with the bearer token; prints the
# answer, dies on anything but 2xx.
api() {
	local method=$1 path=$2 body=${3:-}
	local args=(-sS --max-time 30 -X "$method" -H "Authorization: Bearer $nhs_token" -w '\n%{http_code}')
	[ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data "$body")
	local out code
	out=$(curl "${args[@]}" "http://$nhs_admin$path") || die "admin API $method $path: curl failed"
	code=${out##*$'\n'}
	out=${out%$'\n'*}
	case "$code" in
	2??) printf '%s' "$out" ;;
	*) die "admin API $method $path: HTTP $code: $out" ;;
	esac
}

nhs_stop() {
	kill -TERM "$nhs_pid" 2>/dev/null || true
	local i
	for i in $(seq 1 300); do
		kill -0 "$nhs_pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$nhs_pid" 2>/dev/null; then
		note "nhsrelay did not stop within 30s of SIGTERM; killing it"
		kill -KILL "$nhs_pid" 2>/dev/null || true
	fi
	wait "$nhs_pid" 2>/dev/null || true
	forget "$nhs_pid"
}

nhs_log_tail() { tail -20 "$nhs_log" 2>/dev/null || true; }

nhs_cpu_ms() {
	# /proc/PID/stat fields 14 and 15 (utime, stime) in clock ticks; the
	# command name (field 2) has no spaces here.
	awk -v hz="$(getconf CLK_TCK)" '{ printf "%d", ($14 + $15) * 1000 / hz }' "/proc/$nhs_pid/stat"
}
