#!/usr/bin/env bash
# check-dist.sh - check what scripts/cross-build.sh made: every binary is
# there, under 12 MiB, static, for the right GOOS/GOARCH/GOARM, built with
# CGO off and -trimpath, stamped with VERSION (default: DIR/VERSION, written
# by cross-build.sh), and matches SHA256SUMS. `make check-dist` runs it.
#
#   scripts/check-dist.sh [DIR]      (default: dist)
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${1:-dist}
GO=${GO:-go}
if [ -z "${VERSION:-}" ] && [ -f "$dir/VERSION" ]; then
	VERSION=$(cat "$dir/VERSION")
fi
: "${VERSION:?check-dist: set VERSION or keep the VERSION file cross-build.sh writes}"
limit=$((12 * 1024 * 1024))
fail=0

bad() {
	echo "FAIL $*" >&2
	fail=1
	ffail=1
}

for tool in file readelf sha256sum; do
	command -v "$tool" >/dev/null || {
		echo "check-dist: $tool is missing (apt-get install file binutils coreutils)" >&2
		exit 1
	}
done

# file name, GOOS, GOARCH, GOARM (- for none), what `file` must say
while read -r name goos goarch goarm magic; do
	f=$dir/$name
	ffail=0
	if [ ! -f "$f" ]; then
		bad "$name: missing (run make dist)"
		continue
	fi
	size=$(stat -c %s "$f")
	[ "$size" -lt "$limit" ] || bad "$name: $size bytes, over 12 MiB"

	desc=$(file -b "$f")
	case $desc in
	*"$magic"*) ;;
	*) bad "$name: file says \"$desc\"; want $magic" ;;
	esac
	if [ "$goos" = linux ]; then
		# Static: no program interpreter (ld.so) requested.
		if readelf -lW "$f" | grep -q INTERP; then
			bad "$name: dynamically linked (has an INTERP header)"
		fi
	fi

	info=$("$GO" version -m "$f")
	want=("GOOS=$goos" "GOARCH=$goarch" "CGO_ENABLED=0" "-trimpath=true")
	[ "$goarm" = - ] || want+=("GOARM=$goarm")
	for w in "${want[@]}"; do
		grep -qE "^[[:space:]]+build[[:space:]]+$w(,|\$)" <<<"$info" || bad "$name: go version -m lacks build $w"
	done
	# The packager is a build tool in go.mod, never part of relaybox.
	! grep -q 'goreleaser' <<<"$info" || bad "$name: links the packaging tool (nfpm); it belongs to make dist only"
	# -trimpath keeps -ldflags out of the build info, so look for the stamp itself.
	grep -aqF -- "$VERSION" "$f" || bad "$name: version $VERSION not stamped in (-X main.version)"
	[ "$ffail" = 1 ] || echo "ok   $name  $size bytes  $goos/$goarch${goarm#-}"
done <<'LIST'
relaybox-linux-armv6 linux arm 6 ELF 32-bit LSB executable, ARM
relaybox-linux-armv7 linux arm 7 ELF 32-bit LSB executable, ARM
relaybox-linux-arm64 linux arm64 - ELF 64-bit LSB executable, ARM aarch64
relaybox-linux-amd64 linux amd64 - ELF 64-bit LSB executable, x86-64
relaybox-windows-amd64.exe windows amd64 - PE32+ executable
LIST

if [ -f "$dir/SHA256SUMS" ]; then
	(cd "$dir" && sha256sum --quiet -c SHA256SUMS) || bad "SHA256SUMS does not match"
else
	bad "SHA256SUMS missing"
fi

if [ "$fail" != 0 ]; then
	echo "check-dist: FAILED" >&2
	exit 1
fi
echo "check-dist: all binaries static, right architecture, under 12 MiB"
