#!/usr/bin/env bash
# cross-build.sh - static release binaries for every platform relaybox runs
# on, and their SHA256SUMS. `make dist` runs it; scripts/check-dist.sh
# checks the result.
#
#   scripts/cross-build.sh [OUTDIR]      (default: dist)
#
# Environment: VERSION (default: git describe), GO (default: go).
# Each binary: CGO off (static, no libc on the board), -trimpath, stripped,
# version stamped into main.version.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-dist}
GO=${GO:-go}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}

# GOOS GOARCH GOARM(- for none) file name
targets=(
	"linux arm 6 relaybox-linux-armv6"
	"linux arm 7 relaybox-linux-armv7"
	"linux arm64 - relaybox-linux-arm64"
	"linux amd64 - relaybox-linux-amd64"
	"windows amd64 - relaybox-windows-amd64.exe"
)

mkdir -p "$out"
rm -f "$out"/relaybox-* "$out"/SHA256SUMS "$out"/VERSION
for t in "${targets[@]}"; do
	read -r goos goarch goarm name <<<"$t"
	[ "$goarm" = - ] && goarm=
	echo "build $name (GOOS=$goos GOARCH=$goarch${goarm:+ GOARM=$goarm})"
	CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch GOARM=$goarm \
		"$GO" build -trimpath -ldflags "-s -w -X main.version=$VERSION" \
		-o "$out/$name" ./cmd/relaybox
done
(cd "$out" && sha256sum relaybox-* >SHA256SUMS)
echo "$VERSION" >"$out/VERSION" # what check-dist.sh looks for in the binaries
echo "version $VERSION:"
(cd "$out" && ls -l relaybox-* && cat SHA256SUMS)
