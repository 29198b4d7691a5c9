#!/usr/bin/env bash
# postfix.sh - a throwaway Postfix relay for the side-by-side benchmark
# (scripts/bench/run.sh), following the same driver contract as
# scripts/relaybox-relay.sh:
#
#   postfix.sh start | stop | pids | status | clean
#
# Environment:
#   RELAY_ADDR     127.0.0.1:2526   where Postfix accepts plaintext SMTP
#   SINK_ADDR      127.0.0.1:2600   upstream (benchsink), STARTTLS
#   SINK_TLS_ADDR  127.0.0.1:2465   upstream, implicit TLS
#   UPSTREAM_MODE  starttls         starttls | implicit
#   SINK_CERT      the sink's PEM certificate; Postfix must use TLS
#                  (smtp_tls_security_level=encrypt) and is given it as CAfile
#   PF_ROOT        /tmp/relaybox-bench-postfix   its config, queue and log
#
# Everything lives under PF_ROOT: /etc/postfix and the system's mail setup
# are never touched, and it listens on RELAY_ADDR only. Needs Debian's
# postfix package (for the binaries and the postfix user; the system
# instance need not be configured or running).
set -euo pipefail

RELAY_ADDR=${RELAY_ADDR:-127.0.0.1:2526}
SINK_ADDR=${SINK_ADDR:-127.0.0.1:2600}
SINK_TLS_ADDR=${SINK_TLS_ADDR:-127.0.0.1:2465}
UPSTREAM_MODE=${UPSTREAM_MODE:-starttls}
PF_ROOT=${PF_ROOT:-/tmp/relaybox-bench-postfix}
CONF=$PF_ROOT/conf
QUEUE=$PF_ROOT/queue

die() { echo "postfix.sh: $*" >&2; exit 1; }

# master: the pid of this instance's master process, if it runs.
master() {
	local f=$QUEUE/pid/master.pid p
	[[ -r $f ]] || return 1
	p=$(tr -cd 0-9 <"$f")
	[[ -n $p ]] && kill -0 "$p" 2>/dev/null || return 1
	# A stale pid file may name an unrelated process by now.
	[[ $(readlink "/proc/$p/exe" 2>/dev/null) == */master ]] || return 1
	echo "$p"
}

configure() {
	[[ -n ${SINK_CERT:-} && -r $SINK_CERT ]] || die "set SINK_CERT to the sink's PEM certificate"
	local up wrap
	case $UPSTREAM_MODE in
	starttls) up=$SINK_ADDR wrap=no ;;
	implicit) up=$SINK_TLS_ADDR wrap=yes ;;
	*) die "UPSTREAM_MODE is starttls or implicit" ;;
	esac
	[[ ${RELAY_ADDR%:*} == 127.* && ${up%:*} == 127.* ]] || die "loopback addresses only"
	command -v postconf >/dev/null || PATH=$PATH:/usr/sbin
	command -v postconf >/dev/null || die "postconf not found: apt-get install postfix"

	# A fresh queue every start: nothing from an earlier run may arrive
	# at the sink during this one.
	rm -rf "$QUEUE" "$PF_ROOT/data"
	mkdir -p "$CONF" "$QUEUE" "$PF_ROOT/data" "$PF_ROOT/log"
	chmod 755 "$PF_ROOT" "$CONF" "$QUEUE"
	chown postfix:postfix "$PF_ROOT/data" "$PF_ROOT/log"
	install -m 0644 "$SINK_CERT" "$CONF/sink-ca.pem"
	cat >"$CONF/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $QUEUE
data_directory = $PF_ROOT/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
local_transport = error:no local delivery in the benchmark
inet_interfaces = ${RELAY_ADDR%:*}
inet_protocols = ipv4
smtp_bind_address = 127.0.0.1
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relayhost = [${up%:*}]:${up##*:}
smtp_tls_security_level = encrypt
smtp_tls_wrappermode = $wrap
smtp_tls_CAfile = $CONF/sink-ca.pem
maillog_file_prefixes = $PF_ROOT
maillog_file = $PF_ROOT/log/maillog
CF
	# The packaged master.cf, without chroot (no jail is built here) and
	# with smtpd on RELAY_ADDR instead of port 25.
	cp /usr/share/postfix/master.cf.dist "$CONF/master.cf" 2>/dev/null || cp /etc/postfix/master.cf "$CONF/master.cf"
	postconf -c "$CONF" -F '*/*/chroot = n'
	postconf -c "$CONF" -MX smtp/inet
	postconf -c "$CONF" -Me "$RELAY_ADDR/inet = $RELAY_ADDR inet n - n - - smtpd"
}

start() {
	if p=$(master); then die "already running (master $p)"; fi
	configure
	postfix -c "$CONF" start >"$PF_ROOT/log/start.txt" 2>&1 || { cat "$PF_ROOT/log/start.txt" >&2; die "postfix did not start"; }
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/${RELAY_ADDR%:*}/${RELAY_ADDR##*:}") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	die "postfix is not listening on $RELAY_ADDR (see $PF_ROOT/log)"
}

stop() {
	local p
	p=$(master) || return 0
	postfix -c "$CONF" stop >/dev/null 2>&1 || kill "$p"
	for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
	kill -KILL "$p" 2>/dev/null || true
}

case ${1:-} in
start) start ;;
stop) stop ;;
clean) stop; rm -rf "$PF_ROOT" ;;
pids) if p=$(master); then echo "$p"; ps -o pid= --ppid "$p" | tr -d ' '; fi ;;
status) if p=$(master); then echo "running (master $p)"; else echo stopped; fi ;;
*) die "usage: $0 start|stop|pids|status|clean" ;;
esac
