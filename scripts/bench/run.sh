#!/usr/bin/env bash
# run.sh - relays side by side on one machine: the same load tool
# (smtp-source, plaintext in), the same TLS sink (benchsink, verified TLS
# out), relays interleaved within each repetition so that a noisy machine
# hurts them alike, medians over repetitions. Every address is loopback.
#
#   scripts/bench/run.sh [options]
#
#   --relay NAME=DRIVER@ADDR  (repeatable) default: postfix=scripts/bench/postfix.sh@127.0.0.1:2526
#                             and relaybox=scripts/relaybox-relay.sh@127.0.0.1:2525
#   --sizes "1024 1048576"    payload bytes per message (smtp-source -l)
#   --conc "1 8"              parallel sessions (smtp-source -s)
#   --n N                     messages per case (default 500; 1 MiB cases use N/5)
#   --reps R                  repetitions (default 3)
#   --upstream starttls|implicit   how relays reach the sink (default starttls)
#   --out DIR                 results (default /tmp/relaybox-bench/<time>)
#
# A driver is a script with start|stop|pids that reads RELAY_ADDR, SINK_ADDR,
# SINK_TLS_ADDR, SINK_CERT and UPSTREAM_MODE from the environment and starts
# a relay on RELAY_ADDR forwarding to the sink over TLS, verifying SINK_CERT.
#
# Per case: the sink's counters are reset; smtp-source sends N messages;
# accept rate = N / time until smtp-source exits; end-to-end rate = N / time
# until the sink holds all N. A case fails (and says why) when smtp-source
# fails, the sink gets other than N, or a message reached it without TLS.
# Peak PSS: the relay's processes summed, sampled every 0.5 s.
#
# Needs: smtp-source and postfix (Debian package postfix; no system mail
# setup is needed: echo "postfix postfix/main_mailer_type select No
# configuration" | debconf-set-selections first), curl, go.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
RELAYS=()
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
((${#RELAYS[@]})) || RELAYS=("postfix=$HERE/postfix.sh@127.0.0.1:2526" "relaybox=$ROOT/scripts/relaybox-relay.sh@127.0.0.1:2525")
[[ $UPSTREAM == starttls || $UPSTREAM == implicit ]] || die "--upstream is starttls or implicit"
command -v smtp-source >/dev/null || PATH=$PATH:/usr/sbin
command -v smtp-source >/dev/null || die "smtp-source not found: apt-get install postfix"
command -v curl >/dev/null || die "curl not found: apt-get install curl"
mkdir -p "$OUT"

export SINK_ADDR=127.0.0.1:2600 SINK_TLS_ADDR=127.0.0.1:2465 SINK_CERT=$OUT/sink.pem UPSTREAM_MODE=$UPSTREAM
HTTP=127.0.0.1:2601
(cd "$ROOT" && go build -o "$OUT/benchsink" ./scripts/bench/sink) || die "building the sink failed"
make -C "$ROOT" build >/dev/null
"$OUT/benchsink" -listen "$SINK_ADDR" -tls-listen "$SINK_TLS_ADDR" -http "$HTTP" -cert-out "$SINK_CERT" 2>"$OUT/sink.log" &
SINK=$!
RUNNING=""
cleanup() {
	[[ -z $RUNNING ]] || RELAY_ADDR=${RUNNING#*@} "${RUNNING%@*}" stop >>"$OUT/driver.log" 2>&1 || true
	kill "$SINK" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do curl -sf "http://$HTTP/stats" >/dev/null && break; sleep 0.1; done
curl -sf "http://$HTTP/stats" >/dev/null || die "the sink did not start (see $OUT/sink.log)"

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
for rep in $(seq "$REPS"); do
	for spec in "${RELAYS[@]}"; do
		name=${spec%%=*} rest=${spec#*=}
		driver=${rest%@*} addr=${rest##*@}
		[[ ${addr%:*} == 127.* ]] || die "$spec: loopback addresses only"
		say "rep $rep: $name"
		RELAY_ADDR=$addr "$driver" start >>"$OUT/driver.log" 2>&1 || die "$name did not start (see $OUT/driver.log)"
		RUNNING=$driver@$addr
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
				t0=$(date +%s%N) rc=0
				smtp-source -s "$conc" -m "$n" -l "$size" -f "$FROM" -t "$TO" "$addr" >"$OUT/src-$name-$size-$conc-$rep.log" 2>&1 || rc=$?
				t1=$(date +%s%N)
				got=$(curl -s "http://$HTTP/wait?count=$n&timeout=300") || true
				kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
				sleep 0.3 # a duplicate would arrive now
				got=$(curl -s "http://$HTTP/stats")
				msgs=$(field messages "$got") tlsm=$(field tls_messages "$got") last=$(field last_ns "$got")
				status=ok
				((rc == 0)) || status="smtp-source-exit-$rc"
				((msgs == n)) || status="sink-got-$msgs-of-$n"
				((tlsm == msgs)) || status="plaintext-upstream"
				awk -v rep="$rep" -v name="$name" -v size="$size" -v conc="$conc" -v n="$n" -v t0="$t0" -v t1="$t1" \
					-v last="${last:-0}" -v peak="$(cat "$OUT/peak" 2>/dev/null || echo 0)" -v st="$status" 'BEGIN {
					e = last > t0 ? n / ((last - t0) / 1e9) : 0
					printf "%d,%s,%d,%d,%d,%.1f,%.1f,%d,%s\n", rep, name, size, conc, n, n / ((t1 - t0) / 1e9), e, peak, st }' |
					tee -a "$OUT/results.csv" >&2
				rm -f "$OUT/peak"
			done
		done
		RELAY_ADDR=$addr "$driver" stop >>"$OUT/driver.log" 2>&1 || true
		RUNNING=""
	done
done

# Medians over repetitions, and each relay's end-to-end rate as a ratio to
# the first relay's, measured in the same run.
{
	echo "# relays side by side ($(date -Is), $(uname -srm), $(nproc) CPUs, upstream $UPSTREAM, $REPS reps)"
	echo
	echo "| relay | size | conc | n | accept msg/s | e2e msg/s | e2e vs ${RELAYS[0]%%=*} | peak PSS MiB | failures |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
	tail -n +2 "$OUT/results.csv" | sort -t, -k3,3n -k4,4n -s | awk -F, -v first="${RELAYS[0]%%=*}" '
		function med(s,   a, k, i, j, t) {
			k = split(s, a, " ")
			for (i = 2; i <= k; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
			return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
		}
		{ k = $2 SUBSEP $3 SUBSEP $4; if (!(k in n)) order[++no] = k
		  n[k] = $5; acc[k] = acc[k] " " $6; e2e[k] = e2e[k] " " $7
		  if ($8 > peak[k]) peak[k] = $8
		  if ($9 != "ok") bad[k] = bad[k] " rep" $1 ":" $9 }
		END { for (i = 1; i <= no; i++) { k = order[i]; split(k, f, SUBSEP)
			base = med(e2e[first SUBSEP f[2] SUBSEP f[3]])
			printf "| %s | %d | %d | %d | %.1f | %.1f | %s | %.1f | %s |\n", f[1], f[2], f[3], n[k],
				med(acc[k]), med(e2e[k]), (base > 0 ? sprintf("%.2f", med(e2e[k]) / base) : "-"), peak[k] / 1024, bad[k] } }'
} >"$OUT/summary.md"
cat "$OUT/summary.md"
say "results in $OUT"
