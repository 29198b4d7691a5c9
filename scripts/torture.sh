#!/usr/bin/env bash
# torture.sh - the full crash torture (cmd/relaybox TestTorture): clients
# send numbered messages through the real binary to a TLS upstream while
# relaybox is killed with SIGKILL at random moments and restarted, and the
# upstream goes down and up at random. Passes only with zero lost messages,
# duplicates within the in-flight bound, an empty spool and a clean bbolt
# check. Also runs the power-cut approximation (damaged spool copies).
#
#   scripts/torture.sh [--kills 100] [--clients 8] [--runs 1]
#
# `make test` runs the same test in its short mode (10 kills).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
KILLS=100
CLIENTS=8
RUNS=1
while (($#)); do
	case $1 in
		--kills) KILLS=$2; shift 2 ;;
		--clients) CLIENTS=$2; shift 2 ;;
		--runs) RUNS=$2; shift 2 ;;
		*) sed -n '2,12p' "$0"; exit 2 ;;
	esac
done
cd "$HERE/.."
LOG=$(mktemp /tmp/relaybox-torture.XXXXXX)
echo "go test ./cmd/relaybox -run '^(TestTorture|TestSpoolDamageRefusesStart)\$' -count=$RUNS -v -timeout 60m -torture.kills=$KILLS -torture.clients=$CLIENTS"
set +e
go test ./cmd/relaybox -run '^(TestTorture|TestSpoolDamageRefusesStart)$' -count="$RUNS" -v -timeout 60m \
	-torture.kills="$KILLS" -torture.clients="$CLIENTS" >"$LOG" 2>&1
rc=$?
set -e
# The figures: one summary line per run, and what relaybox said about
# each damaged spool.
grep -E 'torture summary|torture: |spool from the real run|is damaged|^(--- |ok|FAIL|PASS)' "$LOG" | sed 's/^ *//' | cut -c1-400
if ((rc != 0)); then
	grep -E '_test\.go:[0-9]+: ' "$LOG" | grep -vE 'summary|sample ' | sed 's/^ *//' | cut -c1-300 | head -40
	echo "torture FAILED (exit $rc); full output in $LOG" >&2
	exit "$rc"
fi
rm -f "$LOG"
