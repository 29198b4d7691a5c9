#!/usr/bin/env bash
# package.sh - the release packages, from the binaries scripts/cross-build.sh
# put in DIR: Debian packages built with nfpm (go tool nfpm, pinned in
# go.mod; packaging/nfpm.yaml) and the Windows zip; then SHA256SUMS over
# every artifact in DIR. `make dist` runs it after cross-build.sh.
#
#   scripts/package.sh [DIR]      (default: dist)
#
#   relaybox_<debversion>_armhf.deb   the ARMv6 binary: every 32-bit Raspberry Pi OS, Pi Zero/1 included
#   relaybox_<debversion>_arm64.deb   64-bit Raspberry Pi OS and arm64 Debian
#   relaybox_<debversion>_amd64.deb   PCs
#   relaybox-<version>-windows-amd64.zip   relaybox.exe, a Windows sample config, README-windows.txt
#
# The Debian version is the git version with a leading "v" dropped and "-"
# turned into "+" (1.2.0-3-gabc -> 1.2.0+3+gabc); a bare commit hash (no
# tag yet) becomes 0~git+HASH.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${1:-dist}
GO=${GO:-go}
VERSION=${VERSION:-$(cat "$dir/VERSION" 2>/dev/null || echo dev)}

debversion() {
	local v=${1#v}
	v=${v//-/+}
	# A bare commit hash (git describe without tags) may start with a
	# digit by chance; it still sorts below any release.
	[[ $v =~ ^[0-9] && ! $v =~ ^[0-9a-f]{7,}(\+dirty)?$ ]] || v="0~git+$v"
	echo "$v"
}
DEB_VERSION=$(debversion "$VERSION")

abs=$(cd "$dir" && pwd)
rm -f "$dir"/relaybox_*.deb "$dir"/relaybox-*-windows-amd64.zip
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# Build the packager once (cached by go), then run it per architecture.
nfpm=$stage/nfpm
"$GO" build -o "$nfpm" github.com/goreleaser/nfpm/v2/cmd/nfpm

# DEB_ARCH binary sample
while read -r arch bin sample; do
	[[ -f $dir/$bin ]] || { echo "package.sh: $dir/$bin missing (run scripts/cross-build.sh first)" >&2; exit 1; }
	# The recipe's ${VARS}, filled in here: nfpm expands them in some
	# fields but not in file sources.
	sed -e "s|\${DEB_VERSION}|$DEB_VERSION|g" -e "s|\${DEB_ARCH}|$arch|g" \
		-e "s|\${BINARY}|$dir/$bin|g" -e "s|\${SAMPLE}|$sample|g" packaging/nfpm.yaml >"$stage/nfpm.yaml"
	"$nfpm" package --config "$stage/nfpm.yaml" --packager deb \
		--target "$dir/relaybox_${DEB_VERSION}_${arch}.deb" >/dev/null
	echo "package relaybox_${DEB_VERSION}_${arch}.deb"
done <<'LIST'
armhf relaybox-linux-armv6 board/rpi/relaybox.toml
arm64 relaybox-linux-arm64 board/rpi/relaybox.toml
amd64 relaybox-linux-amd64 board/linux/relaybox.toml
LIST

# The zip: python3's zipfile (make test needs python3 anyway), CRLF text so
# Notepad on any Windows shows it right.
cp "$dir/relaybox-windows-amd64.exe" "$stage/relaybox.exe"
sed 's/$/\r/' board/windows/relaybox.toml >"$stage/relaybox.toml"
sed 's/$/\r/' packaging/windows/README-windows.txt >"$stage/README-windows.txt"
zip=relaybox-$VERSION-windows-amd64.zip
(cd "$stage" && python3 -m zipfile -c "$abs/$zip" relaybox.exe relaybox.toml README-windows.txt)
echo "package $zip"

(cd "$dir" && sha256sum relaybox-linux-* relaybox-windows-amd64.exe relaybox_*.deb relaybox-*-windows-amd64.zip >SHA256SUMS)
echo "SHA256SUMS:"
cat "$dir/SHA256SUMS"
