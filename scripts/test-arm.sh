#!/usr/bin/env bash
# test-arm.sh - run the test suite (short mode) as 32-bit ARMv6 (Pi Zero/1)
# and 64-bit ARM binaries under qemu-user emulation. `make test-arm` runs it.
#
# 32-bit ARM is where 64-bit atomics misalign and bbolt's map is capped near
# 2 GiB; cmd/relaybox's TestQuotaDefaultFits32Bit proves the default spool
# quota fits there. The other cmd/relaybox tests are end-to-end tests that
# exec the built binary, which needs binfmt_misc; they run natively only.
#
# Without qemu-user-static this says so loudly and exits 0, so `make test`
# still works on a laptop; CI installs it.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}

missing=()
for q in qemu-arm-static qemu-aarch64-static; do
	command -v "$q" >/dev/null || missing+=("$q")
done
if [ ${#missing[@]} -gt 0 ]; then
	cat >&2 <<MSG
##########################################################################
##  SKIPPING the ARM tests: ${missing[*]} not found.
##  Install it with:   sudo apt-get install qemu-user-static
##  (CI installs it; these tests are the only check of 32-bit ARM.)
##########################################################################
MSG
	exit 0
fi

# run goes on after a failure so one report covers every architecture.
failed=()
run() {
	local name=$1
	shift
	local start=$SECONDS
	echo "== $name: $*"
	if "$@"; then
		echo "== $name: ok, $((SECONDS - start))s"
	else
		echo "== $name: FAILED, $((SECONDS - start))s"
		failed+=("$name")
	fi
}

# -cpu arm1176 is the Pi Zero/1 core: an ARMv7 instruction in the binary
# would fault here instead of on the board.
arm6=(env GOARCH=arm GOARM=6 "$GO" test -short -exec 'qemu-arm-static -cpu arm1176')
run "linux/arm GOARM=6 internal" "${arm6[@]}" ./internal/...
run "linux/arm GOARM=6 32-bit quota" "${arm6[@]}" -run '^TestQuotaDefaultFits32Bit$' ./cmd/relaybox
run "linux/arm64 internal" env GOARCH=arm64 "$GO" test -short -exec qemu-aarch64-static ./internal/...

if [ ${#failed[@]} -gt 0 ]; then
	printf 'test-arm: FAILED: %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "test-arm: all ARM runs passed"
