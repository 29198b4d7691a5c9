#!/usr/bin/env bash
# boot-bench.sh - what a large spool costs relaybox at start-up, while idle,
# while an admin pages through the queue, and how fast it drains: a weekend
# without the campus relay, then the relay comes back.
#
#   scripts/boot-bench.sh [--n 22000] [--size 28000] [--conc 8] [--reps 3]
#                         [--bin NAME=PATH]... [--spool FILE] [--out DIR]
#
# 1. Fill: relaybox (the first --bin) runs with no upstream, so mail is
#    held, and smtp-source (Debian package postfix) sends --n messages of
#    --size bytes: 22,000 x 28,000 B is a spool of about 620 MB. --spool
#    FILE reuses a spool filled before (it is copied, never changed).
# 2. Per binary and repetition, on its own copy of the spool (started and
#    stopped once first, so the file is as that binary leaves it at a
#    shutdown): sync, drop the page cache (echo 3 > /proc/sys/vm/drop_caches;
#    needs root), start it, and print
#      - time from exec to the SMTP port accepting a connection,
#      - bytes read from disk until then (read_bytes in /proc/PID/io),
#      - VmRSS / RssFile / RssAnon 5 s after the start,
#      - the size of GET /api/queue (the first page; the whole queue for a
#        relaybox without paging), and the peak RssAnon while serving it and
#        then every page (?after=next) in turn,
#      - RssFile 5 s after the paging (what stays mapped while idle).
# 3. Drain: the spool copy is started again with an upstream (scripts/bootsink,
#    internal/sink over STARTTLS) that is already listening: time from exec
#    until the sink has every message.
# Medians over --reps are printed per binary; raw rows go to DIR/boot.csv.
#
# Before/after on one spool, for example:
#   git archive main | (mkdir -p /tmp/rb-main && tar -x -C /tmp/rb-main)
#   (cd /tmp/rb-main && go build -o /tmp/relaybox-main ./cmd/relaybox)
#   scripts/boot-bench.sh --bin main=/tmp/relaybox-main --bin new=bin/relaybox
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
N=22000 SIZE=28000 CONC=8 REPS=3 OUT=/tmp/relaybox-boot SPOOL="" BINS=()
while (($#)); do
	case $1 in
		--n) N=$2; shift 2 ;;
		--size) SIZE=$2; shift 2 ;;
		--conc) CONC=$2; shift 2 ;;
		--reps) REPS=$2; shift 2 ;;
		--bin) BINS+=("$2"); shift 2 ;;
		--spool) SPOOL=$2; shift 2 ;;
		--out) OUT=$2; shift 2 ;;
		*) sed -n '2,32p' "$0"; exit 2 ;;
	esac
done
command -v smtp-source >/dev/null || PATH=$PATH:/usr/sbin
[[ -n $SPOOL ]] || command -v smtp-source >/dev/null || { echo "needs smtp-source (apt-get install postfix)" >&2; exit 1; }
[[ -w /proc/sys/vm/drop_caches ]] || { echo "needs root: it drops the page cache" >&2; exit 1; }
if ((${#BINS[@]} == 0)); then
	make -C "$HERE/.." build >/dev/null
	BINS=("this=$HERE/../bin/relaybox")
fi
mkdir -p "$OUT"
(cd "$HERE/.." && go build -o "$OUT/bootsink" ./scripts/bootsink)

SMTP=127.0.0.1:2535 ADMIN=127.0.0.1:2536 SINK=127.0.0.1:2537
PID=""
cleanup() { [[ -z $PID ]] || kill "$PID" 2>/dev/null || true; }
trap cleanup EXIT

# config DIR [upstream]: held mail without an upstream, else the bootsink.
config() {
	cat >"$1/relaybox.toml" <<CFG
hostname = "relaybox.bench"
data_dir = "$1/data"
[listen]
smtp = ["$SMTP"]
allowed_networks = ["127.0.0.0/8"]
max_connections = 200
per_client_connections = 0
per_client_rate = 100000
per_client_burst = 100000
[duplicates]
window = "0"
[policy]
recipient_domains = ["campus.example"]
[queue]
max_size = "8GiB"
max_age = "720h"
[delivery]
connections = 4
min_backoff = "1s"
upstream_hold = "1s"
[admin]
listen = "$ADMIN"
[log]
level = "warn"
CFG
	if [[ ${2:-} == upstream ]]; then
		cat >>"$1/relaybox.toml" <<CFG
[[upstream]]
address = "$SINK"
tls = "starttls"
ca_file = "$OUT/sink.pem"
CFG
	fi
}

listening() { (exec 3<>"/dev/tcp/${SMTP%:*}/${SMTP##*:}") 2>/dev/null; }
now_ns() { date +%s%N; }
field() { awk -v k="$2:" '$1==k {print $2}' "/proc/$1/status"; } # kB
readbytes() { awk '/^read_bytes/ {print $2}' "/proc/$1/io"; }

# start BIN DIR: runs relaybox, sets PID and T_LISTEN (ms), waits for SMTP.
start() {
	local t0
	t0=$(now_ns)
	"$1" run -config "$2/relaybox.toml" >>"$2/relaybox.log" 2>&1 &
	PID=$!
	for _ in $(seq 3000); do
		if listening; then
			READ=$(readbytes "$PID")
			T_LISTEN=$((($(now_ns) - t0) / 1000000))
			T0=$t0
			return 0
		fi
		kill -0 "$PID" 2>/dev/null || break
		sleep 0.01
	done
	cat "$2/relaybox.log" >&2
	echo "relaybox did not start" >&2
	exit 1
}

stop() {
	kill -TERM "$PID"
	wait "$PID" 2>/dev/null || true
	PID=""
}

queued() { curl -s "http://$ADMIN/api/status" | grep -o '"messages": *[0-9]*' | head -1 | grep -o '[0-9]*$'; }
# next FILE: the page's "next" cursor, empty on the last page (or without paging).
next() { grep -o '"next": *"[^"]*"' "$1" | sed 's/.*"\([^"]*\)"$/\1/' || true; }

# sample_peak PID FILE: the highest RssAnon (kB) until FILE.stop exists.
sample_peak() {
	local max=0 v
	while [[ ! -e $2.stop ]]; do
		v=$(field "$1" RssAnon 2>/dev/null || echo 0)
		((v > max)) && max=$v
		sleep 0.02
	done
	echo "$max" >"$2"
}

# --- 1. fill ---------------------------------------------------------------
first=${BINS[0]#*=}
if [[ -z $SPOOL ]]; then
	SPOOL=$OUT/fill/data/spool.db
	if [[ ! -s $SPOOL ]]; then
		rm -rf "$OUT/fill"
		mkdir -p "$OUT/fill"
		config "$OUT/fill"
		start "$first" "$OUT/fill"
		t=$(now_ns)
		smtp-source -s "$CONC" -m "$N" -l "$SIZE" -f a@lab.example -t b@campus.example "$SMTP" >"$OUT/fill/smtp-source.log" 2>&1
		echo "fill: $(queued) messages queued in $((($(now_ns) - t) / 1000000000)) s"
		stop
	fi
fi
FILE_BYTES=$(stat -c %s "$SPOOL")
MSGS=""

# --- 2, 3. measure -----------------------------------------------------------
echo "rep,bin,listen_ms,read_bytes,rss_kb,rssfile_kb,rssanon_kb,page_bytes,pages,peak_anon_kb,idle_rssfile_kb,drain_s" >"$OUT/boot.csv"
for rep in $(seq "$REPS"); do
	for b in "${BINS[@]}"; do
		name=${b%%=*} bin=${b#*=} dir=$OUT/run-$name
		rm -rf "$dir"
		mkdir -p "$dir/data"
		cp "$SPOOL" "$dir/data/spool.db"
		config "$dir"
		start "$bin" "$dir"
		[[ -n $MSGS ]] || MSGS=$(queued)
		stop # the file as this binary leaves it at a shutdown

		sync
		echo 3 >/proc/sys/vm/drop_caches
		start "$bin" "$dir"
		t_listen=$T_LISTEN read=$READ
		sleep "$(awk -v t0="$T0" -v n="$(now_ns)" 'BEGIN{d=5-(n-t0)/1e9; print (d>0?d:0)}')"
		rss=$(field "$PID" VmRSS) rssfile=$(field "$PID" RssFile) rssanon=$(field "$PID" RssAnon)

		rm -f "$dir/peak" "$dir/peak.stop"
		sample_peak "$PID" "$dir/peak" &
		sampler=$!
		page_bytes=$(curl -s -o "$dir/page.json" -w '%{size_download}' "http://$ADMIN/api/queue")
		pages=1 cursor=$(next "$dir/page.json")
		while [[ -n $cursor ]]; do
			curl -s -o "$dir/page.json" "http://$ADMIN/api/queue?after=$cursor"
			pages=$((pages + 1))
			cursor=$(next "$dir/page.json")
		done
		touch "$dir/peak.stop"
		wait "$sampler"
		peak=$(cat "$dir/peak")
		sleep 5
		idle_rssfile=$(field "$PID" RssFile)
		stop

		config "$dir" upstream
		"$OUT/bootsink" -listen "$SINK" -cert-out "$OUT/sink.pem" -n "$MSGS" >"$dir/sink.log" 2>&1 &
		sinkpid=$!
		for _ in $(seq 100); do grep -q listening "$dir/sink.log" && break; sleep 0.05; done
		start "$bin" "$dir"
		wait "$sinkpid"
		drain=$(awk -v t0="$T0" -v n="$(now_ns)" 'BEGIN{printf "%.1f", (n-t0)/1e9}')
		stop
		echo "$rep,$name,$t_listen,$read,$rss,$rssfile,$rssanon,$page_bytes,$pages,$peak,$idle_rssfile,$drain" | tee -a "$OUT/boot.csv"
	done
done

med() { awk -F, -v b="$1" -v c="$2" '$2==b {print $c}' "$OUT/boot.csv" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
echo
echo "spool: $MSGS messages, $FILE_BYTES bytes ($SPOOL); medians over $REPS reps, cold page cache"
for b in "${BINS[@]}"; do
	name=${b%%=*}
	read_b=$(med "$name" 4)
	printf '%-6s listening %5s ms, read %6.1f MB (%4.1f%% of the file); 5 s after start RSS %5.1f MiB (file %5.1f, anon %5.1f)\n' \
		"$name" "$(med "$name" 3)" "$(awk -v r="$read_b" 'BEGIN{print r/1e6}')" "$(awk -v r="$read_b" -v f="$FILE_BYTES" 'BEGIN{print 100*r/f}')" \
		"$(awk -v v="$(med "$name" 5)" 'BEGIN{print v/1024}')" "$(awk -v v="$(med "$name" 6)" 'BEGIN{print v/1024}')" "$(awk -v v="$(med "$name" 7)" 'BEGIN{print v/1024}')"
	printf '       /api/queue %s bytes (%s pages walked), peak RssAnon %5.1f MiB; idle RssFile after paging %5.1f MiB; drain %s s\n' \
		"$(med "$name" 8)" "$(med "$name" 9)" "$(awk -v v="$(med "$name" 10)" 'BEGIN{print v/1024}')" "$(awk -v v="$(med "$name" 11)" 'BEGIN{print v/1024}')" "$(med "$name" 12)"
done
echo "raw: $OUT/boot.csv"
