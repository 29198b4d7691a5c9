#!/usr/bin/env bash
# cpu-per-msg.sh - CPU time per forwarded message for each relay, measured
# interleaved: the whole machine's user+system time (/proc/stat: the load
# tool, the relay, the sink, the kernel's network and disk work, and
# anything else running) over N messages, beside the time of the processes
# the measurement runs (load tool, sink, relay) and of the relay alone.
# Unlike a rate, CPU per message hardly moves when the box is slow. The
# whole-machine figure counts other work too: the line gives the machine's
# background rate, sampled for 2 s just before while nothing of ours ran,
# and the figure with it taken off; on a box shared with other busy work
# that background is large and moves (it yields to our load), so read
# "ours" and "relay" there, and "machine" on a quiet box.
#
#   scripts/bench/cpu-per-msg.sh [options] [NAME=DRIVER@ADDR ...]
#
#   -s SIZE    payload bytes per message (smtp-source -l), default 1048576
#   -c CONC    parallel sessions, default 8
#   -n N       messages per measurement, default 150
#   -r REPS    repetitions (targets interleaved in each), default 3
#   -S fast|go-smtp   the sink's SMTP server (default fast)
#   -B         no loopback baseline (smtp-source straight into the sink)
#   -o DIR     results (default /tmp/relaybox-cpu-per-msg/<time>)
#
# Drivers follow scripts/bench/run.sh's contract (start|stop|pids with
# RELAY_ADDR, SINK_ADDR, SINK_TLS_ADDR, SINK_CERT, UPSTREAM_MODE); default:
# postfix (scripts/bench/postfix.sh) and relaybox (scripts/relaybox-relay.sh).
# Ports as in run.sh: PORT_BASE=P puts relaybox on P, the sink on P+1..P+3,
# Postfix on P+4; without it 2525, 2600, 2465, 2601, 2526.
#
# Per rep and target: start the relay, warm it up (50 messages), sample the
# background for 2 s, then send N messages and wait until the sink holds
# them. Printed per rep, in ms per message:
#   machine   whole-machine user+system time / N
#   bg        the background rate over the same wall time / N
#   net       machine - bg (what this load cost the box)
#   ours      smtp-source + the sink + the relay's processes
#   relay     the relay's processes (for Postfix: the master with what its
#             finished children left in its cutime, and the live children)
# then the median of each per target. The baseline's net is what the load
# tool and the sink cost without a relay; a relay's net (or ours) minus
# the baseline's is what relaying cost the machine.
#
# Needs: smtp-source and postfix (Debian package postfix), curl, go.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SIZE=1048576 CONC=8 N=150 REPS=3 SINK_MODE=fast BASELINE=1
OUT=/tmp/relaybox-cpu-per-msg/$(date +%Y%m%d-%H%M%S)
FROM=bench@lab.example TO=user@campus.example
die() { echo "cpu-per-msg.sh: $*" >&2; exit 1; }
while getopts s:c:n:r:S:Bo:h o; do
	case $o in
		s) SIZE=$OPTARG ;; c) CONC=$OPTARG ;; n) N=$OPTARG ;; r) REPS=$OPTARG ;;
		S) SINK_MODE=$OPTARG ;; B) BASELINE=0 ;; o) OUT=$OPTARG ;;
		h) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
		*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
case $SINK_MODE in
	fast) SINK_FLAGS=(-fast) ;;
	go-smtp) SINK_FLAGS=() ;;
	*) die "-S is fast or go-smtp" ;;
esac
. "$HERE/common.sh"
bench_ports
RELAYS=("$@")
((${#RELAYS[@]})) || RELAYS=("postfix=$HERE/postfix.sh@127.0.0.1:$PF_PORT" "relaybox=$ROOT/scripts/relaybox-relay.sh@127.0.0.1:$RB_PORT")
bench_tools
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

UPSTREAM_MODE=starttls
bench_start_sink "${SINK_FLAGS[@]}"

HZ=$(getconf CLK_TCK)
# machine: user+nice+system+irq+softirq of all CPUs, in ticks.
machine() { awk '/^cpu /{ print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
# tree: ticks of the given processes, with what their reaped children
# left them (utime stime cutime cstime): Postfix's master reaps the smtpd
# and smtp processes that exit during the load.
tree() {
	local p t=0 s
	for p in "$@"; do
		s=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null) || continue
		t=$((t + $(awk '{ print $12 + $13 + $14 + $15 }' <<<"$s")))
	done
	echo "$t"
}

TARGETS=("${RELAYS[@]}")
((BASELINE)) && TARGETS=("baseline" "${RELAYS[@]}")
echo "rep,target,size,conc,n,machine_ms,bg_ms,net_ms,ours_ms,relay_ms,e2e_msgs_s,status" >"$OUT/results.csv"
echo "size=$SIZE conc=$CONC n=$N sink=$SINK_MODE; ms of CPU per message (machine = all processes; bg = the background over the same time; net = machine - bg; ours = load tool + sink + relay; relay = the relay's processes)"
for rep in $(seq "$REPS"); do
	for spec in "${TARGETS[@]}"; do
		if [[ $spec == baseline ]]; then
			name=baseline driver="" addr=$SINK_ADDR
		else
			name=${spec%%=*} rest=${spec#*=}
			driver=${rest%@*} addr=${rest##*@}
		fi
		[[ ${addr%:*} == 127.* ]] || die "$spec: loopback addresses only"
		if [[ -n $driver ]]; then
			RELAY_ADDR=$addr "$driver" start >>"$OUT/driver.log" 2>&1 || die "$name did not start (see $OUT/driver.log)"
			RUNNING=$driver@$addr
		fi
		curl -sf "http://$HTTP/reset" >/dev/null
		smtp-source -s "$CONC" -m 50 -l "$SIZE" -f "$FROM" -t "$TO" "$addr" >/dev/null 2>&1 || die "$name: warm-up failed"
		curl -s "http://$HTTP/wait?count=50&timeout=120" >/dev/null || die "$name: warm-up mail did not reach the sink"
		sleep 1
		# The background: the machine's rate while our processes idle.
		b0=$(machine) bt0=$(date +%s%N)
		sleep 2
		b1=$(machine) bt1=$(date +%s%N)
		curl -sf "http://$HTTP/reset" >/dev/null
		pids=()
		[[ -z $driver ]] || mapfile -t pids < <(RELAY_ADDR=$addr "$driver" pids)
		r0=$(tree "${pids[@]}") k0=$(tree "$SINK") c0=$(machine) t0=$(date +%s%N) rc=0
		/usr/bin/time -f "%U %S" -o "$OUT/src.time" smtp-source -s "$CONC" -m "$N" -l "$SIZE" -f "$FROM" -t "$TO" "$addr" >"$OUT/src-$name-$rep.log" 2>&1 || rc=$?
		got=$(curl -s "http://$HTTP/wait?count=$N&timeout=300") || true
		c1=$(machine) t1=$(date +%s%N)
		[[ -z $driver ]] || mapfile -t pids < <(RELAY_ADDR=$addr "$driver" pids)
		r1=$(tree "${pids[@]}") k1=$(tree "$SINK")
		read -r su ss <"$OUT/src.time" || su=0 ss=0
		msgs=$(sed -n 's/.*"messages":\([0-9]*\).*/\1/p' <<<"$got")
		status=ok
		((rc == 0)) || status="smtp-source-exit-$rc"
		((${msgs:-0} == N)) || status="sink-got-${msgs:-0}-of-$N"
		if [[ -n $driver ]]; then
			RELAY_ADDR=$addr "$driver" stop >>"$OUT/driver.log" 2>&1 || true
			RUNNING=""
		fi
		awk -v rep="$rep" -v name="$name" -v size="$SIZE" -v conc="$CONC" -v n="$N" -v hz="$HZ" \
			-v c="$((c1 - c0))" -v b="$((b1 - b0))" -v bt="$((bt1 - bt0))" -v t="$((t1 - t0))" \
			-v r="$((r1 - r0))" -v k="$((k1 - k0))" -v src="$su $ss" -v relay="${driver:+1}" -v st="$status" 'BEGIN {
			m = c * 1000 / hz / n; bg = b / bt * t * 1000 / hz / n
			split(src, sv, " "); ours = ((r + k) / hz + sv[1] + sv[2]) * 1000 / n
			printf "%d,%s,%d,%d,%d,%.2f,%.2f,%.2f,%.2f,%s,%.1f,%s\n", rep, name, size, conc, n, m, bg, m - bg, ours,
				relay ? sprintf("%.2f", r * 1000 / hz / n) : "-", n / (t / 1e9), st }' >>"$OUT/results.csv"
		tail -1 "$OUT/results.csv" | awk -F, '{ printf "rep %d: %-10s machine %6.2f  bg %6.2f  net %6.2f  ours %6.2f  relay %6s ms/msg; %.1f msg/s%s\n",
			$1, $2, $6, $7, $8, $9, $10, $11, ($12 == "ok" ? "" : "  FAILED: " $12) }'
	done
done
echo "medians over $REPS rep(s):"
tail -n +2 "$OUT/results.csv" | awk -F, '
	function med(s,   a, k, i, j, t) {
		k = split(s, a, " ")
		for (i = 2; i <= k; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
		return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
	}
	{ if (!($2 in seen)) { seen[$2] = 1; order[++no] = $2 }
	  m[$2] = m[$2] " " $6; bg[$2] = bg[$2] " " $7; net[$2] = net[$2] " " $8; o[$2] = o[$2] " " $9; e[$2] = e[$2] " " $11
	  if ($10 != "-") r[$2] = r[$2] " " $10
	  if ($12 != "ok") bad[$2] = bad[$2] " rep" $1 ":" $12 }
	END { for (i = 1; i <= no; i++) { k = order[i]
		printf "%-10s machine %6.2f  bg %6.2f  net %6.2f  ours %6.2f  relay %6s ms/msg; %.1f msg/s%s\n", k, med(m[k]), med(bg[k]), med(net[k]),
			med(o[k]), (k in r) ? sprintf("%.2f", med(r[k])) : "-", med(e[k]), (k in bad) ? "  FAILED:" bad[k] : "" } }' | tee "$OUT/summary.txt"
echo "results in $OUT" >&2
