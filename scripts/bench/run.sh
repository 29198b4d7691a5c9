#!/usr/bin/env bash
# run.sh - relays side by side on one machine: the same load tool
# (smtp-source, plaintext in), the same TLS sink (benchsink, verified TLS
# out), and a loopback baseline (smtp-source straight into the sink,
# plaintext: what the machine does with no relay in the way), all measured
# interleaved within each repetition so that a noisy machine hurts them
# alike, medians over repetitions. Every address is loopback.
#
#   scripts/bench/run.sh [options]
#
#   --relay NAME=DRIVER@ADDR  (repeatable) default: postfix=scripts/bench/postfix.sh@127.0.0.1:2526
#                             and relaybox=scripts/relaybox-relay.sh@127.0.0.1:2525
#   --no-baseline             skip the loopback baseline
#   --ref NAME                the relay the ratio columns divide by (default
#                             postfix if it is one of the relays, else the first)
#   --sizes "1024 1048576"    payload bytes per message (smtp-source -l)
#   --conc "1 8"              parallel sessions (smtp-source -s)
#   --n N                     messages per case (default 500; 1 MiB cases use N/5)
#   --reps R                  repetitions (default 3)
#   --upstream starttls|implicit   how relays reach the sink (default starttls)
#   --sink fast|go-smtp       the sink's SMTP server (default fast: benchsink
#                             -fast, a line-based server that takes far less
#                             CPU per MiB than go-smtp's, which would compete
#                             with the relay for the cores)
#   --sink-args "ARGS"        more benchsink flags (e.g. --sink-args -fast)
#   --out DIR                 results (default /tmp/relaybox-bench/<time>)
#
# Ports: PORT_BASE=P (environment) puts relaybox on P, the sink on P+1
# (STARTTLS), P+2 (implicit TLS) and P+3 (counters), Postfix on P+4, so that
# runs in separate checkouts do not collide; without it: 2525, 2600, 2465,
# 2601 and 2526. The relays keep their config, spool and queue under DIR
# (RB_ROOT and PF_ROOT override).
#
# A driver is a script with start|stop|pids that reads RELAY_ADDR, SINK_ADDR,
# SINK_TLS_ADDR, SINK_CERT and UPSTREAM_MODE from the environment and starts
# a relay on RELAY_ADDR forwarding to the sink over TLS, verifying SINK_CERT.
#
# Per case: the sink's counters are reset; smtp-source sends N messages;
# accept rate = N / time until smtp-source exits; end-to-end rate = N / time
# until the sink holds all N. A case fails (and says why) when smtp-source
# fails, the sink gets other than N, or a message reached it without TLS
# (relays; the baseline is plaintext). Peak PSS: the relay's processes
# summed, sampled every 0.5 s. summary.md gives per case the medians, each
# target's e2e rate over the reference relay's (ratio of the medians, and
# rep by rep) and over the baseline's.
#
# Needs: smtp-source and postfix (Debian package postfix; no system mail
# setup is needed: echo "postfix postfix/main_mailer_type select No
# configuration" | debconf-set-selections first), curl, go.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
RELAYS=()
BASELINE=1
REF=""
SINK_MODE=fast
SINK_ARGS=""
SIZES="1024 1048576"
CONCS="1 8"
N=500
REPS=3
UPSTREAM=starttls
OUT=/tmp/relaybox-bench/$(date +%Y%m%d-%H%M%S)
FROM=bench@lab.example
TO=user@campus.example

die() { echo "run.sh: $*" >&2; exit 1; }
say() { echo "[$(date +%T)] $*" >&2; }
while (($#)); do
	case $1 in
	--relay) RELAYS+=("$2"); shift 2 ;;
	--no-baseline) BASELINE=0; shift ;;
	--ref) REF=$2; shift 2 ;;
	--sink) SINK_MODE=$2; shift 2 ;;
	--sink-args) SINK_ARGS="$SINK_ARGS $2"; shift 2 ;;
	--sizes) SIZES=$2; shift 2 ;;
	--conc) CONCS=$2; shift 2 ;;
	--n) N=$2; shift 2 ;;
	--reps) REPS=$2; shift 2 ;;
	--upstream) UPSTREAM=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
done
. "$HERE/common.sh"
bench_ports
((${#RELAYS[@]})) || RELAYS=("postfix=$HERE/postfix.sh@127.0.0.1:$PF_PORT" "relaybox=$ROOT/scripts/relaybox-relay.sh@127.0.0.1:$RB_PORT")
[[ $UPSTREAM == starttls || $UPSTREAM == implicit ]] || die "--upstream is starttls or implicit"
case $SINK_MODE in
fast) SINK_ARGS="-fast$SINK_ARGS" ;;
go-smtp) SINK_ARGS=${SINK_ARGS# } ;;
*) die "--sink is fast or go-smtp" ;;
esac
if [[ -z $REF ]]; then
	REF=${RELAYS[0]%%=*}
	for spec in "${RELAYS[@]}"; do [[ ${spec%%=*} != postfix ]] || REF=postfix; done
fi
bench_tools
mkdir -p "$OUT"

OUT=$(cd "$OUT" && pwd)
UPSTREAM_MODE=$UPSTREAM
# shellcheck disable=SC2086 # SINK_ARGS is a list of flags
bench_start_sink $SINK_ARGS

field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" <<<"$2"; }
# pss_of: summed PSS (KiB) of the given pids. PSS, not RSS: Postfix's
# processes share most of their pages, and RSS would count them once per
# process. No fork per process (Postfix has dozens during a load).
pss_of() {
	local p t=0 k v _
	for p in "$@"; do
		[[ -r /proc/$p/smaps_rollup ]] || continue
		while read -r k v _; do
			[[ $k == Pss: ]] && t=$((t + v))
		done <"/proc/$p/smaps_rollup" 2>/dev/null || true
	done
	echo "$t"
}

echo "rep,relay,size,conc,n,accept_msgs_s,e2e_msgs_s,peak_pss_kib,status" >"$OUT/results.csv"
TARGETS=("${RELAYS[@]}")
((BASELINE)) && TARGETS=("baseline" "${RELAYS[@]}")
for rep in $(seq "$REPS"); do
	for spec in "${TARGETS[@]}"; do
		if [[ $spec == baseline ]]; then
			# No relay: smtp-source talks to the sink's plaintext listener.
			name=baseline driver="" addr=$SINK_ADDR
		else
			name=${spec%%=*} rest=${spec#*=}
			driver=${rest%@*} addr=${rest##*@}
			[[ $name != baseline ]] || die "$spec: \"baseline\" names the loopback baseline; call the relay something else"
		fi
		[[ ${addr%:*} == 127.* ]] || die "$spec: loopback addresses only"
		say "rep $rep: $name"
		if [[ -n $driver ]]; then
			RELAY_ADDR=$addr "$driver" start >>"$OUT/driver.log" 2>&1 || die "$name did not start (see $OUT/driver.log)"
			RUNNING=$driver@$addr
		fi
		# Warm-up, not measured: worker processes, page cache, TLS sessions.
		curl -sf "http://$HTTP/reset" >/dev/null
		smtp-source -s 4 -m 50 -l 1024 -f "$FROM" -t "$TO" "$addr" >/dev/null 2>&1 || die "$name: warm-up failed"
		curl -s "http://$HTTP/wait?count=50&timeout=60" >/dev/null || die "$name: warm-up mail did not reach the sink"
		for size in $SIZES; do
			for conc in $CONCS; do
				n=$N
				((size < 1048576)) || n=$((N / 5 > 10 ? N / 5 : 10))
				curl -sf "http://$HTTP/reset" >/dev/null
				# The relay's processes are asked for at every sample: Postfix
				# starts smtpd and smtp processes as the load arrives.
				sampler=""
				if [[ -n $driver ]]; then
					(
						set +e
						peak=0
						while :; do
							r=$(pss_of $(RELAY_ADDR=$addr "$driver" pids))
							if ((r > peak)); then peak=$r; fi
							echo "$peak" >"$OUT/peak"
							sleep 0.5
						done
					) &
					sampler=$!
				fi
				t0=$(date +%s%N) rc=0
				smtp-source -s "$conc" -m "$n" -l "$size" -f "$FROM" -t "$TO" "$addr" >"$OUT/src-$name-$size-$conc-$rep.log" 2>&1 || rc=$?
				t1=$(date +%s%N)
				got=$(curl -s "http://$HTTP/wait?count=$n&timeout=300") || true
				if [[ -n $sampler ]]; then kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true; fi
				sleep 0.3 # a duplicate would arrive now
				got=$(curl -s "http://$HTTP/stats")
				msgs=$(field messages "$got") tlsm=$(field tls_messages "$got") last=$(field last_ns "$got")
				status=ok
				((rc == 0)) || status="smtp-source-exit-$rc"
				((msgs == n)) || status="sink-got-$msgs-of-$n"
				[[ -z $driver ]] || ((tlsm == msgs)) || status="plaintext-upstream"
				awk -v rep="$rep" -v name="$name" -v size="$size" -v conc="$conc" -v n="$n" -v t0="$t0" -v t1="$t1" \
					-v last="${last:-0}" -v peak="$(cat "$OUT/peak" 2>/dev/null || echo 0)" -v st="$status" 'BEGIN {
					e = last > t0 ? n / ((last - t0) / 1e9) : 0
					printf "%d,%s,%d,%d,%d,%.1f,%.1f,%d,%s\n", rep, name, size, conc, n, n / ((t1 - t0) / 1e9), e, peak, st }' |
					tee -a "$OUT/results.csv" >&2
				rm -f "$OUT/peak"
			done
		done
		if [[ -n $driver ]]; then
			RELAY_ADDR=$addr "$driver" stop >>"$OUT/driver.log" 2>&1 || true
			RUNNING=""
		fi
	done
done

# Medians over repetitions. Ratios of e2e rates, all measured in this run:
# "vs REF" is the median's over the reference relay's median, "per rep"
# the same rep by rep (the figure that shows how steady a ratio is), and
# "/ baseline" the median's over the loopback baseline's median.
{
	echo "# relays side by side ($(date -Is), $(uname -srm), $(nproc) CPUs, upstream $UPSTREAM, sink $SINK_MODE${SINK_ARGS:+ ($SINK_ARGS)}, $REPS reps)"
	echo
	echo "| relay | size | conc | n | accept msg/s | e2e msg/s | e2e vs $REF | vs $REF per rep | relay / baseline | peak PSS MiB | failures |"
	echo "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|"
	tail -n +2 "$OUT/results.csv" | sort -t, -k3,3n -k4,4n -s | awk -F, -v ref="$REF" '
		function med(s,   a, k, i, j, t) {
			k = split(s, a, " ")
			for (i = 2; i <= k; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
			return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
		}
		function ratio(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "-" }
		{ k = $2 SUBSEP $3 SUBSEP $4; if (!(k in n)) order[++no] = k
		  n[k] = $5; acc[k] = acc[k] " " $6; e2e[k] = e2e[k] " " $7
		  at[k, $1] = $7; reps[k] = reps[k] " " $1
		  if ($8 > peak[k]) peak[k] = $8
		  if ($9 != "ok") bad[k] = bad[k] " rep" $1 ":" $9 }
		END { for (i = 1; i <= no; i++) { k = order[i]; split(k, f, SUBSEP)
			rk = ref SUBSEP f[2] SUBSEP f[3]; bk = "baseline" SUBSEP f[2] SUBSEP f[3]
			m = med(e2e[k])
			per = ""; nr = split(reps[k], rs, " ")
			for (j = 1; j <= nr; j++) per = per (j > 1 ? " " : "") ratio(at[k, rs[j]], at[rk, rs[j]] + 0)
			printf "| %s | %d | %d | %d | %.1f | %.1f | %s | %s | %s | %s | %s |\n", f[1], f[2], f[3], n[k],
				med(acc[k]), m, (rk in n) ? ratio(m, med(e2e[rk])) : "-", (rk in n) ? per : "-",
				(bk in n) ? ratio(m, med(e2e[bk])) : "-", (f[1] == "baseline" ? "-" : sprintf("%.1f", peak[k] / 1024)), bad[k] } }'
} >"$OUT/summary.md"
cat "$OUT/summary.md"
say "results in $OUT"
