#!/usr/bin/env bash
# bench.sh - relaybox side by side with Postfix and a loopback baseline:
# scripts/bench/run.sh with its default relays (Postfix through
# scripts/bench/postfix.sh, relaybox through scripts/relaybox-relay.sh), the
# same load tool (smtp-source), the same TLS sink (scripts/bench/sink, its
# -fast server), medians over repetitions.
#
#   scripts/bench.sh [run.sh options, e.g. --reps 5 --sizes "1024 1048576"]
#
# Needs: smtp-source and postfix (Debian package postfix, no system mail
# setup needed), curl, go. Results: /tmp/relaybox-bench/<time>/.
set -euo pipefail
exec "$(dirname "$0")/bench/run.sh" "$@"
