#!/usr/bin/env bash
# install.sh - install relaybox as a hardened systemd service on a fresh
# Raspberry Pi OS (works on any systemd Linux). Safe to run again: it
# upgrades the binary, keeps the config and the spool, and rewrites the unit.
#
#   sudo ./install.sh [BINARY]
#
# BINARY defaults to the relaybox-linux-<arch> for this machine, looked for
# next to this script and in ../../dist. What it does:
#   /usr/local/bin/relaybox               the binary (replaced atomically)
#   user and group relaybox               system account, no login, in gpio/dialout if they exist
#   /etc/relaybox/relaybox.toml           the sample config, only if none is there (root:relaybox 0640)
#   /var/lib/relaybox                     the spool, relaybox:relaybox 0700
#   /etc/systemd/system/relaybox.service  from `relaybox service unit`, enabled; (re)started only
#                                         once the config no longer holds the sample's placeholders
set -euo pipefail

die() {
	echo "install.sh: $*" >&2
	exit 1
}

[ "$(id -u)" -eq 0 ] || die "run as root: sudo $0 $*"
command -v systemctl >/dev/null || die "systemd not found; run relaybox from your init system instead (relaybox run -config FILE)"

here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-}
if [ -z "$bin" ]; then
	case $(uname -m) in
	armv6l) arch=armv6 ;;
	armv7l) arch=armv7 ;;
	aarch64 | arm64) arch=arm64 ;;
	x86_64) arch=amd64 ;;
	*) die "no relaybox build for $(uname -m); name the binary: sudo $0 BINARY" ;;
	esac
	for c in "$here/relaybox-linux-$arch" "$here/../../dist/relaybox-linux-$arch"; do
		if [ -f "$c" ]; then
			bin=$c
			break
		fi
	done
	[ -n "$bin" ] || die "relaybox-linux-$arch not found next to install.sh or in dist/; copy it here or name it: sudo $0 BINARY"
fi
[ -f "$bin" ] || die "$bin: no such file"
# A binary for another architecture fails here, not at boot.
ver=$("$bin" version) || die "$bin does not run on this $(uname -m) machine; pick the matching relaybox-linux-* file"
echo "installing $ver"

tmp=/usr/local/bin/.relaybox.new
install -m 0755 "$bin" "$tmp"
mv -f "$tmp" /usr/local/bin/relaybox # rename: a running relaybox keeps its old file

if ! id -u relaybox >/dev/null 2>&1; then
	useradd --system --user-group --home-dir /var/lib/relaybox --no-create-home \
		--shell /usr/sbin/nologin --comment "relaybox SMTP relay" relaybox
	echo "created system user relaybox"
fi
# gpio: the status LED (/dev/gpiomem, /dev/gpiochip*); dialout: the serial console.
for g in gpio dialout; do
	if getent group "$g" >/dev/null; then
		usermod -a -G "$g" relaybox
	fi
done

install -d -m 0755 -o root -g root /etc/relaybox
install -d -m 0700 -o relaybox -g relaybox /var/lib/relaybox
# A spool first created by a manual `sudo relaybox run` belongs to root.
chown -R relaybox:relaybox /var/lib/relaybox

cfg=/etc/relaybox/relaybox.toml
if [ ! -e "$cfg" ]; then
	install -m 0640 -o root -g relaybox "$here/relaybox.toml" "$cfg"
	echo "installed the sample config $cfg"
fi

# Check the config as the service will read it: as user relaybox.
if ! runuser -u relaybox -- /usr/local/bin/relaybox check-config -config "$cfg" >/dev/null; then
	die "$cfg does not validate (see above); fix it and run install.sh again"
fi

unit=/etc/systemd/system/relaybox.service
/usr/local/bin/relaybox service unit -config "$cfg" >"$unit.new"
mv -f "$unit.new" "$unit"
systemctl daemon-reload
systemctl enable relaybox.service

# A relay greeting as, relaying for and forwarding to example.edu helps
# nobody: start only once the sample's placeholders are edited.
if ! runuser -u relaybox -- /usr/local/bin/relaybox check-config -ready -config "$cfg" >/dev/null 2>&1; then
	systemctl stop relaybox.service 2>/dev/null || true
	cat <<MSG
relaybox is installed and enabled, but NOT started: $cfg still holds the
sample's placeholders (example.edu). Next:
  sudoedit $cfg                      # hostname, policy.recipient_domains, [[upstream]] address
  sudo relaybox check-config -ready -config $cfg
  sudo systemctl restart relaybox
MSG
	exit 0
fi
systemctl restart relaybox.service
echo "relaybox is installed and running:"
systemctl --no-pager --lines=5 status relaybox.service || true
