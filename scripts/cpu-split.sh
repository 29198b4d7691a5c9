#!/usr/bin/env bash
# cpu-split.sh - where the CPU goes, per message, on the end-to-end path:
# relaybox, the benchmark's TLS sink (scripts/bench/sink), and the load tool (smtp-source),
# each in milliseconds of user+system time per message. On a 2-core box the
# three share the CPU, so the relay's share is what bounds the e2e rate.
#
#   scripts/cpu-split.sh [-s SIZE] [-c CONC] [-n N] [-r REPS] [-S fast|go-smtp]
#
# Needs smtp-source (Debian package postfix), curl, go; the sink is built
# from scripts/bench/sink and runs with -fast (its line-based server) unless
# -S go-smtp asks for the go-smtp one. PORT_BASE (default 2525) picks four
# loopback ports from it, so that runs in separate checkouts do not collide.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SIZE=1048576 CONC=8 N=200 REPS=3 SINK_MODE=fast
while getopts s:c:n:r:S: o; do
	case $o in
		s) SIZE=$OPTARG ;; c) CONC=$OPTARG ;; n) N=$OPTARG ;; r) REPS=$OPTARG ;; S) SINK_MODE=$OPTARG ;;
		*) exit 2 ;;
	esac
done
case $SINK_MODE in
	fast) SINK_FLAGS=(-fast) ;;
	go-smtp) SINK_FLAGS=() ;;
	*) echo "cpu-split.sh: -S is fast or go-smtp" >&2; exit 2 ;;
esac
command -v smtp-source >/dev/null || PATH=$PATH:/usr/sbin
make -C "$HERE/.." build >/dev/null
OUT=$(mktemp -d /tmp/cpu-split.XXXX)
SINK_BIN=$OUT/benchsink
(cd "$HERE/.." && go build -o "$SINK_BIN" ./scripts/bench/sink)
P=${PORT_BASE:-2525}
export SINK_ADDR=127.0.0.1:$((P + 1)) SINK_TLS_ADDR=127.0.0.1:$((P + 2)) SINK_CERT=$OUT/sink.pem
export RELAY_ADDR=127.0.0.1:$P RB_ROOT=$OUT/rb
HTTP=127.0.0.1:$((P + 3))
"$SINK_BIN" -listen "$SINK_ADDR" -tls-listen "$SINK_TLS_ADDR" -http "$HTTP" -cert-out "$SINK_CERT" "${SINK_FLAGS[@]}" 2>"$OUT/sink.log" &
SINK=$!
trap 'kill $SINK 2>/dev/null; "$HERE/relaybox-relay.sh" stop >/dev/null 2>&1 || true' EXIT
for _ in $(seq 50); do curl -sf "http://$HTTP/stats" >/dev/null && break; sleep 0.1; done
"$HERE/relaybox-relay.sh" start >/dev/null
RB=$(cat "$RB_ROOT/pid")
# memsplit: the relay's resident memory by kind (MiB): anonymous (heap,
# stacks), the spool file's mapping, the binary's text; and its PSS.
memsplit() {
	awk '/^[0-9a-f]+-[0-9a-f]+ /{ kind = ($6 ~ /spool\.db$/) ? "spool" : ($6 ~ /relaybox|rb-/) ? "binary" : ($6 == "") ? "anon" : "other" }
		/^Rss:/ { r[kind] += $2 } /^Pss:/ { pss += $2 }
		END { printf "%.1f %.1f %.1f %.1f\n", r["anon"]/1024, r["spool"]/1024, r["binary"]/1024, pss/1024 }' "/proc/$1/smaps"
}
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
echo "size=$SIZE conc=$CONC n=$N sink=$SINK_MODE (ms CPU per message; e2e msg/s)"
for r in $(seq "$REPS"); do
	curl -sf "http://$HTTP/reset" >/dev/null
	r0=$(ticks "$RB") s0=$(ticks "$SINK") t0=$(date +%s.%N)
	# Sample the relay's memory every 0.2 s; keep the sample with the peak PSS.
	(peak=0; line=""; while kill -0 "$RB" 2>/dev/null; do
		m=$(memsplit "$RB") || break
		p=${m##* }; if awk -v a="$p" -v b="$peak" 'BEGIN{exit !(a>b)}'; then peak=$p; line=$m; echo "$line" >"$OUT/mem.peak"; fi
		sleep 0.2; done) &
	SAMPLER=$!
	# PERF=1: also record the relay's profile of the last rep (perf record -g).
	[[ ${PERF:-} && $r == "$REPS" ]] && { perf record -g -o "$OUT/perf.data" -p "$RB" >/dev/null 2>&1 & PERFPID=$!; }
	/usr/bin/time -f "%U %S" -o "$OUT/src.time" smtp-source -s "$CONC" -m "$N" -l "$SIZE" \
		-f bench@relaybox.bench -t user@campus.example "$RELAY_ADDR" >/dev/null 2>&1
	curl -sf "http://$HTTP/wait?count=$N&timeout=120" >/dev/null
	t1=$(date +%s.%N)
	r1=$(ticks "$RB") s1=$(ticks "$SINK")
	kill "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null || true
	read -r ma ms mb mp <"$OUT/mem.peak"
	echo "rep $r: peak PSS $mp MiB: anon $ma, spool mapping $ms, binary $mb; after: $(memsplit "$RB")"
	[[ ${PERFPID:-} ]] && { kill -INT "$PERFPID"; wait "$PERFPID" || true; echo "profile: perf report -i $OUT/perf.data"; }
	read -r su ss <"$OUT/src.time"
	awk -v r=$((r1 - r0)) -v s=$((s1 - s0)) -v su="$su" -v ss="$ss" -v hz="$HZ" -v n="$N" -v t="$(echo "$t1 - $t0" | bc)" \
		'BEGIN { printf "rep %d: relay %.2f  sink %.2f  source %.2f  total %.2f ms/msg; %.1f msg/s; cpu busy %.0f%% of 2 cores\n", '"$r"', r*1000/hz/n, s*1000/hz/n, (su+ss)*1000/n, (r/hz+s/hz+su+ss)*1000/n, n/t, (r/hz+s/hz+su+ss)/t/2*100 }'
done
