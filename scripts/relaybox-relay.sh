#!/usr/bin/env bash
# relaybox-relay.sh - run relaybox as a relay driver for the benchmark
# runner (scripts/bench/run.sh), the same contract scripts/bench/postfix.sh
# follows:
#
#   relaybox-relay.sh start | stop | pids | status
#
# Environment (defaults as the harness sets them):
#   RELAY_ADDR     127.0.0.1:2525   where relaybox accepts plaintext SMTP
#   SINK_ADDR      127.0.0.1:2600   upstream, STARTTLS
#   SINK_TLS_ADDR  127.0.0.1:2465   upstream, implicit TLS
#   UPSTREAM_MODE  starttls         starttls | implicit
#   SINK_CERT      PEM of the sink's certificate: relaybox VERIFIES it (ca_file)
#   RB_ROOT        /tmp/relaybox-bench   config, spool and log
#   RB_BIN         bin/relaybox next to this script's repo (built if missing)
#   RB_CONNECTIONS 8                delivery.connections
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
RELAY_ADDR=${RELAY_ADDR:-127.0.0.1:2525}
SINK_ADDR=${SINK_ADDR:-127.0.0.1:2600}
SINK_TLS_ADDR=${SINK_TLS_ADDR:-127.0.0.1:2465}
UPSTREAM_MODE=${UPSTREAM_MODE:-starttls}
RB_ROOT=${RB_ROOT:-/tmp/relaybox-bench}
RB_BIN=${RB_BIN:-$HERE/../bin/relaybox}
RB_CONNECTIONS=${RB_CONNECTIONS:-8}

die() { echo "relaybox-relay: $*" >&2; exit 1; }

pid() {
	local p
	[[ -r $RB_ROOT/pid ]] || return 1
	p=$(cat "$RB_ROOT/pid")
	kill -0 "$p" 2>/dev/null || return 1
	echo "$p"
}

start() {
	[[ -n ${SINK_CERT:-} && -r ${SINK_CERT} ]] || die "SINK_CERT must name the upstream's PEM certificate"
	[[ -x $RB_BIN ]] || make -C "$HERE/.." build >&2
	local up tls
	case $UPSTREAM_MODE in
		starttls) up=$SINK_ADDR; tls=starttls ;;
		implicit) up=$SINK_TLS_ADDR; tls=tls ;;
		*) die "UPSTREAM_MODE must be starttls or implicit" ;;
	esac
	stop || true
	rm -rf "$RB_ROOT"
	mkdir -p "$RB_ROOT"
	cp "$SINK_CERT" "$RB_ROOT/sink.pem"
	cat >"$RB_ROOT/relaybox.toml" <<CFG
hostname = "relaybox.bench"
data_dir = "$RB_ROOT/data"
[listen]
smtp = ["$RELAY_ADDR"]
allowed_networks = ["127.0.0.0/8"]
max_connections = 200
# smtp-source is one client sending as fast as it can: lift the per-client
# flood limits, which are for stuck devices.
per_client_connections = 0
per_client_rate = 100000
per_client_burst = 100000
[duplicates]
window = "0"
[policy]
recipient_domains = ["campus.example", "*.campus.example"]
[queue]
max_size = "1GiB"
[delivery]
connections = $RB_CONNECTIONS
min_backoff = "1s"
[[upstream]]
address = "$up"
tls = "$tls"
ca_file = "$RB_ROOT/sink.pem"
[admin]
listen = ""
[log]
level = "warn"
CFG
	# The environment passes through (GODEBUG=gctrace=1, GOGC) for profiling runs.
	"$RB_BIN" run -config "$RB_ROOT/relaybox.toml" >"$RB_ROOT/relaybox.log" 2>&1 &
	echo $! >"$RB_ROOT/pid"
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/${RELAY_ADDR%:*}/${RELAY_ADDR##*:}") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	cat "$RB_ROOT/relaybox.log" >&2
	die "relaybox did not start"
}

stop() {
	local p
	p=$(pid) || return 0
	kill -TERM "$p"
	for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
	kill -KILL "$p"
}

case ${1:-} in
	start) start ;;
	stop) stop ;;
	pids) pid ;;
	status) pid >/dev/null && echo running || echo stopped ;;
	*) die "usage: $0 start|stop|pids|status" ;;
esac
