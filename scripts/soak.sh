#!/usr/bin/env bash
# soak.sh - the fault soak (cmd/relaybox TestSoak): minutes of a flaky
# upstream (random 4xx, slow replies, connections cut mid-DATA, periods
# with an untrusted certificate) and a flaky client population (cut
# mid-DATA, idle until listen.idle_timeout, oversize, garbage) around
# well-behaved clients whose 250s are tracked. Prints the daemon's RSS and
# goroutines from start to end; fails if they grow, if anything accepted is
# lost, or if the status does not read degraded while the upstream
# misbehaves and ok after.
#
#   scripts/soak.sh [--duration 3m] [--clients 4]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DURATION=3m
CLIENTS=4
while (($#)); do
	case $1 in
		--duration) DURATION=$2; shift 2 ;;
		--clients) CLIENTS=$2; shift 2 ;;
		*) sed -n '2,12p' "$0"; exit 2 ;;
	esac
done
cd "$HERE/.."
LOG=$(mktemp /tmp/relaybox-soak.XXXXXX)
echo "go test ./cmd/relaybox -run '^TestSoak\$' -count=1 -v -timeout 60m -soak.duration=$DURATION -soak.clients=$CLIENTS"
set +e
go test ./cmd/relaybox -run '^TestSoak$' -count=1 -v -timeout 60m \
	-soak.duration="$DURATION" -soak.clients="$CLIENTS" >"$LOG" 2>&1
rc=$?
set -e
grep -E 'soak|sample |^(--- |ok|FAIL|PASS)' "$LOG" | grep -v '^=== ' | sed 's/^ *//' | cut -c1-500
if ((rc != 0)); then
	grep -E '_test\.go:[0-9]+: ' "$LOG" | grep -vE 'summary|sample ' | sed 's/^ *//' | cut -c1-300 | head -40
	echo "soak FAILED (exit $rc); full output in $LOG" >&2
	exit "$rc"
fi
rm -f "$LOG"
