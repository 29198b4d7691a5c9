#!/usr/bin/env bash
# fuzz.sh - run one Go fuzz target for a while: scripts/fuzz.sh DIR TARGET TIME
#
# A failing input found by the fuzzer fails this script (go test writes it
# to DIR/testdata/fuzz/TARGET/, where it then runs as a regression test).
# Go's fuzzing engine can also end a short run with "context deadline
# exceeded" when the time runs out while it is still minimising a new
# (passing) input; that is not a finding, so it is retried once, loudly.
set -uo pipefail
dir=$1 target=$2 time=$3
GO=${GO:-go}
for try in 1 2; do
	out=$(cd "$dir" && "$GO" test -run '^$' -fuzz "^${target}\$" -fuzztime "$time" . 2>&1)
	rc=$?
	echo "$out" | tail -4
	if [ $rc -eq 0 ]; then
		exit 0
	fi
	if echo "$out" | grep -q "Failing input written to"; then
		echo "$out" >&2
		exit 1
	fi
	if [ $try -eq 1 ] && echo "$out" | grep -q "context deadline exceeded"; then
		echo "fuzz.sh: $target: the fuzzing engine ran out of time while minimising a passing input; running it again" >&2
		continue
	fi
	echo "$out" >&2
	exit 1
done
exit 1
