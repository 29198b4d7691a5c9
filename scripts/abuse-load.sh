#!/usr/bin/env bash
# abuse-load.sh - the abuse measurements of issue 17 against the real
# binary, on loopback only (127.0.0.x addresses stand for distinct
# clients), with bounded loops: password guessing from one address, slots
# held by trickling clients, idle admin connections, refused-connect log
# lines, implicit-TLS refusals. Takes about two minutes and loads both
# cores; prints each test's figures.
#
#   scripts/abuse-load.sh [-run TestLoadAuthGuessing]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
RUN='^TestLoad'
if [[ ${1:-} == -run ]]; then RUN=$2; fi
cd "$HERE/.."
RELAYBOX_LOAD=1 go test ./cmd/relaybox -run "$RUN" -count=1 -v -timeout 20m 2>&1 |
	grep -E 'load_abuse_test.go|^(--- |ok|FAIL|PASS)'
