#!/usr/bin/env bash
# check-packages.sh - check what scripts/package.sh made in DIR: each .deb's
# control fields, architecture, file list with modes and owners, conffiles,
# maintainer scripts (sh -n, and the start-when-edited rule), that its
# binary is for the right CPU and (where this machine runs it) works and
# validates the packaged config; the Windows zip's contents; SHA256SUMS
# covering everything. `make check-dist` runs it. Without dpkg-deb
# (Debian's dpkg) the .deb checks are skipped, loudly.
#
#   scripts/check-packages.sh [DIR]      (default: dist)
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${1:-dist}
GO=${GO:-go}
VERSION=${VERSION:-$(cat "$dir/VERSION")}
v=${VERSION#v}
v=${v//-/+}
[[ $v =~ ^[0-9] && ! $v =~ ^[0-9a-f]{7,}(\+dirty)?$ ]] || v="0~git+$v" # as package.sh
DEB_VERSION=$v
fail=0
bad() {
	echo "FAIL $*" >&2
	fail=1
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Every file the package installs: mode owner/group path.
want_files="-rw-r----- root/relaybox ./etc/relaybox/relaybox.toml
-rw-r--r-- root/root ./lib/systemd/system/relaybox.service
-rwxr-xr-x root/root ./usr/bin/relaybox
-rw-r--r-- root/root ./usr/share/doc/relaybox/README.md
-rw-r--r-- root/root ./usr/share/doc/relaybox/api.md
-rw-r--r-- root/root ./usr/share/doc/relaybox/configuration.md
-rw-r--r-- root/root ./usr/share/doc/relaybox/design.md
-rw-r--r-- root/root ./usr/share/doc/relaybox/examples/relaybox-alerts.yml
-rw-r--r-- root/root ./usr/share/doc/relaybox/examples/relaybox-dashboard.json"

# exe ARCH BINARY ARGS...: runs a packaged binary natively, or under
# qemu-user (as an ARMv6 CPU for armhf, like the test-arm suite).
exe() {
	local arch=$1
	shift
	case $arch-$(uname -m) in
	amd64-x86_64 | arm64-aarch64) "$@" ;;
	armhf-*) qemu-arm-static -cpu arm1176 "$@" ;;
	arm64-*) qemu-aarch64-static "$@" ;;
	*) return 127 ;;
	esac
}

if ! command -v dpkg-deb >/dev/null; then
	echo "SKIP check-packages: dpkg-deb not found, the .deb packages are NOT checked (apt-get install dpkg)" >&2
else
	# arch, GOARCH, GOARM (- for none), what `file` says of its binary
	while read -r arch goarch goarm magic; do
		deb=$dir/relaybox_${DEB_VERSION}_${arch}.deb
		if [[ ! -f $deb ]]; then
			bad "$deb missing (run make dist)"
			continue
		fi
		before=$fail
		for f in Package:relaybox "Version:$DEB_VERSION" "Architecture:$arch" Section:mail; do
			got=$(dpkg-deb -f "$deb" "${f%%:*}")
			[[ $got == "${f#*:}" ]] || bad "$deb: ${f%%:*} is \"$got\", want \"${f#*:}\""
		done
		for f in Maintainer Description Depends; do
			[[ -n $(dpkg-deb -f "$deb" "$f") ]] || bad "$deb: control field $f is empty"
		done
		got=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print $1, $2, $6}' | sort)
		[[ $got == "$(sort <<<"$want_files")" ]] || bad "$deb: file list differs:
$(diff <(sort <<<"$want_files") <(echo "$got") || true)"

		x=$tmp/$arch
		mkdir -p "$x/ctl" "$x/root"
		dpkg-deb -e "$deb" "$x/ctl"
		dpkg-deb -x "$deb" "$x/root"
		[[ $(cat "$x/ctl/conffiles" 2>/dev/null) == /etc/relaybox/relaybox.toml ]] || bad "$deb: conffiles is not exactly /etc/relaybox/relaybox.toml"
		for s in preinst postinst prerm postrm; do
			[[ -x $x/ctl/$s ]] || { bad "$deb: $s missing or not executable"; continue; }
			sh -n "$x/ctl/$s" || bad "$deb: $s has a syntax error"
		done
		grep -q 'check-config -ready' "$x/ctl/postinst" || bad "$deb: postinst does not wait for an edited config (check-config -ready)"
		grep -q 'usermod -a -G "\$g" relaybox' "$x/ctl/preinst" || bad "$deb: preinst does not add relaybox to gpio/dialout"
		cmp -s "$x/root/lib/systemd/system/relaybox.service" packaging/deb/relaybox.service || bad "$deb: the unit is not packaging/deb/relaybox.service"

		bin=$x/root/usr/bin/relaybox
		desc=$(file -b "$bin")
		[[ $desc == *"$magic"* ]] || bad "$deb: binary is \"$desc\", want $magic"
		info=$("$GO" version -m "$bin")
		grep -qE "^[[:space:]]+build[[:space:]]+GOARCH=$goarch\$" <<<"$info" || bad "$deb: binary is not GOARCH=$goarch"
		[[ $goarm == - ]] || grep -qE "^[[:space:]]+build[[:space:]]+GOARM=$goarm(,|\$)" <<<"$info" || bad "$deb: binary is not GOARM=$goarm"

		if exe "$arch" "$bin" version >/dev/null 2>&1; then
			exe "$arch" "$bin" version | grep -qF -- "$VERSION" || bad "$deb: relaybox version does not say $VERSION"
			cfg=$x/root/etc/relaybox/relaybox.toml
			out=$(exe "$arch" "$bin" check-config -config "$cfg" 2>&1 >/dev/null) || bad "$deb: the packaged config fails check-config: $out"
			grep -q "placeholder" <<<"$out" || bad "$deb: check-config does not warn about the sample's placeholders"
			if exe "$arch" "$bin" check-config -ready -config "$cfg" >/dev/null 2>&1; then
				bad "$deb: check-config -ready accepts the unedited sample: postinst would start on example.edu"
			fi
			sed 's/example\.edu/chem.campus.test/g' "$cfg" >"$x/edited.toml"
			out=$(exe "$arch" "$bin" check-config -ready -config "$x/edited.toml" 2>&1 >/dev/null) || bad "$deb: an edited copy of the packaged config fails check-config -ready: $out"
			ran="ran it"
		else
			echo "note: $arch binary not run here (apt-get install qemu-user-static to run it); checked statically" >&2
			ran="static checks only"
		fi
		[[ $fail != "$before" ]] || echo "ok   $(basename "$deb")  ($ran)"
	done <<'LIST'
armhf arm 6 ELF 32-bit LSB executable, ARM, EABI5
arm64 arm64 - ELF 64-bit LSB executable, ARM aarch64
amd64 amd64 - ELF 64-bit LSB executable, x86-64
LIST
fi

zip=$dir/relaybox-$VERSION-windows-amd64.zip
if [[ ! -f $zip ]]; then
	bad "$zip missing (run make dist)"
else
	python3 - "$zip" "$dir/relaybox-windows-amd64.exe" <<'PY' || bad "$zip: contents wrong (see above)"
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
names = sorted(z.namelist())
ok = True
def bad(msg):
    global ok
    print("FAIL", sys.argv[1] + ":", msg, file=sys.stderr)
    ok = False
if names != ["README-windows.txt", "relaybox.exe", "relaybox.toml"]:
    bad("holds %s, want README-windows.txt, relaybox.exe, relaybox.toml" % names)
else:
    if z.read("relaybox.exe") != open(sys.argv[2], "rb").read():
        bad("relaybox.exe is not the dist build")
    cfg = z.read("relaybox.toml").decode()
    for want in ["data_dir = 'C:\\ProgramData\\relaybox\\data'", 'pin = ""', '# device = "COM3"', "\r\n"]:
        if want not in cfg:
            bad("relaybox.toml lacks %r" % want)
    readme = z.read("README-windows.txt").decode()
    for want in ["service install -config C:\\ProgramData\\relaybox\\relaybox.toml", "service start", 'relaybox.exe" status', "elevated", "\r\n"]:
        if want not in readme:
            bad("README-windows.txt lacks %r" % want)
sys.exit(0 if ok else 1)
PY
	[[ $fail != 0 ]] || echo "ok   $(basename "$zip")"
fi

for f in "$dir"/relaybox_*.deb "$zip"; do
	[[ -f $f ]] || continue
	grep -qF "  $(basename "$f")" "$dir/SHA256SUMS" || bad "SHA256SUMS does not cover $(basename "$f")"
done

if [[ $fail != 0 ]]; then
	echo "check-packages: FAILED" >&2
	exit 1
fi
echo "check-packages: packages and zip as specified"
