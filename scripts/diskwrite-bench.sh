#!/usr/bin/env bash
# diskwrite-bench.sh - bytes written to disk per forwarded message, relaybox
# next to Postfix: the figure that wears out a board's SD card.
#
#   scripts/diskwrite-bench.sh [--reps 3] [--conc 8] [--n1k 2000] [--n100k 500] [--n1m 200] [--out DIR]
#
# Each relay forwards N messages of 1 KiB, 100 KiB and 1 MiB (smtp-source,
# --conc clients) to the benchmark's TLS sink (scripts/bench/sink) over STARTTLS; the disk's
# sectors-written counter
# (/proc/diskstats) is read after `sync` before the load and again after
# the sink has every message and the relay has cleaned up (its queue files
# or spool records deleted), so journaling and deletes are counted too.
# Each relay's write_bytes (/proc/PID/io, summed over its processes: what
# the kernel charged them for dirtying page cache) is printed beside it. Relays
# alternate within each repetition; medians are printed. Nothing else
# should be writing to the disk meanwhile.
#
# Before each measured run, as many messages of the same size go
# through uncounted (--no-warm to skip): the figure is the steady state of a
# relay that has run a while, which is what wears a card over the years. A
# fresh relaybox spool file grows during its first burst, and writing into
# the new part of the file costs ext4 journal blocks that a grown file does
# not (20-30 KB per 1 MiB message on this machine).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SINK_BIN=/tmp/relaybox-benchsink
REPS=3 CONC=8 N1K=2000 N100K=500 N1M=200 OUT=/tmp/relaybox-diskwrite WARM=1
while (($#)); do
	case $1 in
		--reps) REPS=$2; shift 2 ;;
		--n1k) N1K=$2; shift 2 ;;
		--n100k) N100K=$2; shift 2 ;;
		--conc) CONC=$2; shift 2 ;;
		--n1m) N1M=$2; shift 2 ;;
		--out) OUT=$2; shift 2 ;;
		--no-warm) WARM=0; shift ;;
		*) sed -n '2,23p' "$0"; exit 2 ;;
	esac
done
command -v smtp-source >/dev/null || PATH=$PATH:/usr/sbin
command -v smtp-source >/dev/null || { echo "needs smtp-source (apt-get install postfix)" >&2; exit 1; }
make -C "$HERE/.." build >/dev/null
(cd "$HERE/.." && go build -o "$SINK_BIN" ./scripts/bench/sink)
mkdir -p "$OUT"
DEV=$(basename "$(df --output=source /tmp | tail -1)")
DEV=${DEV%%[0-9]*} # vda1 -> vda: the whole disk's counter
export SINK_ADDR=127.0.0.1:2800 SINK_TLS_ADDR=127.0.0.1:2865 SINK_CERT=$OUT/sink.pem
"$SINK_BIN" -listen "$SINK_ADDR" -tls-listen "$SINK_TLS_ADDR" -http 127.0.0.1:2801 \
	-cert-out "$SINK_CERT" >"$OUT/sink.log" 2>&1 &
SINK=$!
trap 'kill $SINK 2>/dev/null || true' EXIT
sleep 1

sectors() { awk -v d="$DEV" '$3==d {print $10}' /proc/diskstats; }
# relay_write PIDS... -> write_bytes summed over the processes. A Postfix
# daemon that exits meanwhile is not lost: the kernel adds a reaped child's
# counters to its parent's (master's) /proc/PID/io.
relay_write() {
	local p t=0
	for p in "$@"; do
		[[ -r /proc/$p/io ]] && t=$((t + $(awk '/^write_bytes/{print $2}' "/proc/$p/io")))
	done
	echo "$t"
}

echo "rep,relay,size,n,disk_bytes_per_msg,process_bytes_per_msg" >"$OUT/diskwrite.csv"
for rep in $(seq "$REPS"); do
	for relay in postfix relaybox; do
		if [[ $relay == postfix ]]; then
			drv=$HERE/bench/postfix.sh addr=127.0.0.1:2526
		else
			drv=$HERE/relaybox-relay.sh addr=127.0.0.1:2525
		fi
		RELAY_ADDR=$addr "$drv" start >>"$OUT/driver.log" 2>&1
		curl -s 127.0.0.1:2801/reset >/dev/null
		smtp-source -s 8 -m 200 -l 1024 -f a@lab.example -t b@campus.example "$addr" >/dev/null # warm-up
		curl -s "127.0.0.1:2801/wait?count=200&timeout=120" >/dev/null
		for size in 1024 102400 1048576; do
			n=$(( size == 1024 ? N1K : size == 102400 ? N100K : N1M ))
			if ((WARM)); then
				curl -s 127.0.0.1:2801/reset >/dev/null
				smtp-source -s "$CONC" -m "$n" -l "$size" -f a@lab.example -t b@campus.example "$addr" >/dev/null
				curl -s "127.0.0.1:2801/wait?count=$n&timeout=600" >/dev/null
			fi
			sleep 2; sync; s0=$(sectors)
			w0=$(relay_write $(RELAY_ADDR=$addr "$drv" pids 2>/dev/null || true))
			curl -s 127.0.0.1:2801/reset >/dev/null
			smtp-source -s "$CONC" -m "$n" -l "$size" -f a@lab.example -t b@campus.example "$addr" >/dev/null
			curl -s "127.0.0.1:2801/wait?count=$n&timeout=600" >/dev/null
			sleep 3; sync; s1=$(sectors)
			w1=$(relay_write $(RELAY_ADDR=$addr "$drv" pids 2>/dev/null || true))
			awk -v r="$rep" -v t="$relay" -v s="$size" -v n="$n" -v a="$s0" -v b="$s1" -v c="$w0" -v d="$w1" \
				'BEGIN{printf "%d,%s,%d,%d,%.0f,%.0f\n", r, t, s, n, (b-a)*512/n, (d-c)/n}' >>"$OUT/diskwrite.csv"
		done
		RELAY_ADDR=$addr "$drv" stop >>"$OUT/driver.log" 2>&1
	done
done
echo "bytes written to disk per message, $CONC clients (warm-up: $( ((WARM)) && echo "n of the same size" || echo none)), medians over $REPS reps (disk = /proc/diskstats $DEV; process = write_bytes in /proc/PID/io summed over the relay's processes):"
for size in 1024 102400 1048576; do for relay in postfix relaybox; do
	med() { awk -F, -v s="$size" -v t="$relay" -v c="$1" '$3==s && $2==t {print $c}' "$OUT/diskwrite.csv" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
	printf '  %-8s %7d B: disk %10s B/msg   process %10s B/msg\n' "$relay" "$size" "$(med 5)" "$(med 6)"
done; done
echo "raw: $OUT/diskwrite.csv"
