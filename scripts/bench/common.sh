# common.sh - the set-up run.sh and cpu-per-msg.sh share; sourced, not run.
#
# bench_ports: RB_PORT SINK_PORT SINK_TLS_PORT HTTP_PORT PF_PORT from
# PORT_BASE (relaybox on P, the sink on P+1..P+3, Postfix on P+4), or the
# fixed defaults without it.
bench_ports() {
	if [[ -n ${PORT_BASE:-} ]]; then
		local p=$PORT_BASE
		RB_PORT=$p SINK_PORT=$((p + 1)) SINK_TLS_PORT=$((p + 2)) HTTP_PORT=$((p + 3)) PF_PORT=$((p + 4))
	else
		RB_PORT=2525 SINK_PORT=2600 SINK_TLS_PORT=2465 HTTP_PORT=2601 PF_PORT=2526
	fi
}

# bench_tools: smtp-source and curl, or die naming the package.
bench_tools() {
	command -v smtp-source >/dev/null || PATH=$PATH:/usr/sbin
	command -v smtp-source >/dev/null || die "smtp-source not found: apt-get install postfix"
	command -v curl >/dev/null || die "curl not found: apt-get install curl"
}

# bench_start_sink FLAG...: builds relaybox and the sink, starts the sink
# with FLAGs on the ports above (OUT, ROOT and UPSTREAM_MODE set by the
# caller), exports what the drivers read, and waits until it answers. On
# exit the relay named by RUNNING (NAME=DRIVER@ADDR's DRIVER@ADDR) is
# stopped and the sink killed.
bench_start_sink() {
	export SINK_ADDR=127.0.0.1:$SINK_PORT SINK_TLS_ADDR=127.0.0.1:$SINK_TLS_PORT SINK_CERT=$OUT/sink.pem UPSTREAM_MODE
	# The drivers' own defaults are shared by every run on the machine (and
	# relaybox-relay.sh's is the parent of run.sh's default DIR, which its
	# start removes): each run keeps its relays' files beside its results.
	export RB_ROOT=${RB_ROOT:-$OUT/relaybox} PF_ROOT=${PF_ROOT:-$OUT/postfix}
	HTTP=127.0.0.1:$HTTP_PORT
	(cd "$ROOT" && go build -o "$OUT/benchsink" ./scripts/bench/sink) || die "building the sink failed"
	make -C "$ROOT" build >/dev/null
	"$OUT/benchsink" -listen "$SINK_ADDR" -tls-listen "$SINK_TLS_ADDR" -http "$HTTP" -cert-out "$SINK_CERT" "$@" 2>"$OUT/sink.log" &
	SINK=$!
	RUNNING=""
	trap bench_cleanup EXIT
	for _ in $(seq 100); do curl -sf "http://$HTTP/stats" >/dev/null && break; sleep 0.1; done
	curl -sf "http://$HTTP/stats" >/dev/null || die "the sink did not start (see $OUT/sink.log)"
}

bench_cleanup() {
	[[ -z $RUNNING ]] || RELAY_ADDR=${RUNNING#*@} "${RUNNING%@*}" stop >>"$OUT/driver.log" 2>&1 || true
	kill "$SINK" 2>/dev/null || true
}
