#!/usr/bin/env bash
# bench.sh - relaybox side by side with Postfix, with the shared harness
# (../shared/bench/run-bench.sh): same load tool (smtp-source), same TLS
# sink, same machine, targets interleaved per repetition, medians.
#
#   scripts/bench.sh [run-bench.sh options, e.g. --reps 3 --sizes "1024 1048576"]
#
# Needs: smtp-source and a Postfix install (Debian package postfix, no
# system MTA configured), curl, go. Results: /tmp/bench-results/<time>/.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH=${BENCH:-$HERE/../../shared/bench}
[[ -x $BENCH/run-bench.sh ]] || { echo "bench.sh: no harness at $BENCH (set BENCH=)" >&2; exit 1; }
make -C "$HERE/.." build >/dev/null
cd "$BENCH"
exec ./run-bench.sh \
	--relay postfix=./postfix-relay.sh@127.0.0.1:2526 \
	--relay relaybox="$HERE/relaybox-relay.sh@127.0.0.1:2525" \
	"$@"
