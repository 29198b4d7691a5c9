#!/usr/bin/env bash
# accept-bench.sh - how fast relaybox accepts (and fsyncs) mail, with no
# upstream configured so every message stays in the spool. Prints figures;
# it is a measurement, not a test.
#
#   scripts/accept-bench.sh [--reps 3] [--out DIR]
#
# Cases: 1 KiB and 1 MiB messages from 1 and 8 concurrent clients
# (smtp-source, Debian package postfix), accept rate = N / wall time. Then,
# at 8 clients x 1 KiB, fdatasync+fsync calls per accepted message (strace
# -f -c on the daemon), and peak RssAnon while 4 clients each send 25 MiB.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$HERE/..
REPS=3
OUT=/tmp/relaybox-accept-bench
while (($#)); do
	case $1 in
		--reps) REPS=$2; shift 2 ;;
		--out) OUT=$2; shift 2 ;;
		*) sed -n '2,12p' "$0"; exit 2 ;;
	esac
done
command -v smtp-source >/dev/null || { echo "needs smtp-source: apt-get install postfix" >&2; exit 1; }
command -v strace >/dev/null || { echo "needs strace: apt-get install strace" >&2; exit 1; }
make -C "$ROOT" build >/dev/null
BIN=$ROOT/bin/relaybox
ADDR=127.0.0.1:2535
mkdir -p "$OUT"

start() {
	rm -rf "$OUT/data"
	cat >"$OUT/relaybox.toml" <<CFG
data_dir = "$OUT/data"
[listen]
smtp = ["$ADDR"]
max_connections = 200
per_client_connections = 0
per_client_rate = 100000
per_client_burst = 100000
[duplicates]
window = "0"
[policy]
recipient_domains = ["campus.example"]
[queue]
max_size = "1GiB"
[admin]
listen = ""
[log]
level = "warn"
CFG
	"$BIN" run -config "$OUT/relaybox.toml" 2>"$OUT/relaybox.log" &
	PID=$!
	for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/2535) 2>/dev/null && return 0; sleep 0.1; done
	echo "relaybox did not start" >&2; cat "$OUT/relaybox.log" >&2; exit 1
}
stop() { kill -TERM "$PID"; wait "$PID" || true; }

load() { # size conc count
	smtp-source -s "$2" -m "$3" -l "$1" -f a@lab.example -t b@campus.example "$ADDR" >/dev/null
}

now() { date +%s.%N; }

echo "case,rep,size,conc,n,seconds,msg_per_s" >"$OUT/accept.csv"
for rep in $(seq "$REPS"); do
	for size in 1024 1048576; do
		for conc in 1 8; do
			n=$(( size == 1024 ? 2000 : 200 ))
			start
			t0=$(now); load "$size" "$conc" "$n"; t1=$(now)
			stop
			awk -v r="$rep" -v s="$size" -v c="$conc" -v n="$n" -v a="$t0" -v b="$t1" \
				'BEGIN{printf "accept,%d,%d,%d,%d,%.3f,%.1f\n", r, s, c, n, b-a, n/(b-a)}' >>"$OUT/accept.csv"
		done
	done
done

# fsyncs per message at 8 clients x 1 KiB.
start
strace -f -c -e trace=fdatasync,fsync -p "$PID" -o "$OUT/strace.txt" &
SPID=$!
sleep 0.5
load 1024 8 2000
sleep 0.5
kill -INT "$SPID"; wait "$SPID" || true
stop
syncs=$(awk '$NF=="fdatasync"||$NF=="fsync"{s+=$4} END{print s+0}' "$OUT/strace.txt")

# Peak RssAnon while 4 clients each send 25 MiB.
start
peak=0
( load 26214400 4 4 ) & LPID=$!
while kill -0 "$LPID" 2>/dev/null; do
	v=$(awk '/^RssAnon:/{print $2}' /proc/$PID/status)
	(( v > peak )) && peak=$v
	sleep 0.1
done
stop

echo
echo "accept rate, medians over $REPS reps (msg/s):"
for size in 1024 1048576; do for conc in 1 8; do
	med=$(awk -F, -v s="$size" -v c="$conc" '$3==s && $4==c {print $7}' "$OUT/accept.csv" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
	printf '  %7d B x %d clients: %s\n' "$size" "$conc" "$med"
done; done
awk -v s="$syncs" 'BEGIN{printf "fsync+fdatasync calls at 8 clients x 1 KiB: %d for 2000 messages = %.3f per message\n", s, s/2000}'
echo "peak RssAnon, 4 clients x 25 MiB: $((peak / 1024)) MiB ($peak kB)"
echo "raw: $OUT/accept.csv $OUT/strace.txt"
